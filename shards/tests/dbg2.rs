fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}
#[test]
fn plain_glommio() {
    let before = fds();
    for _ in 0..4 {
        std::thread::spawn(|| {
            let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(0))
                .make()
                .unwrap();
            ex.run(async { glommio::timer::sleep(std::time::Duration::from_millis(1)).await });
        })
        .join()
        .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    eprintln!("plain glommio: before {before} after {}", fds());
}
