use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;
use shards::*;
use std::{io::Write, net::TcpStream as StdStream, time::Duration};
fn fds() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}
#[test]
fn dbg() {
    let before = fds();
    for round in 0..4 {
        let cfg = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            cpus: vec![0, 1],
            backlog: 128,
            drain_timeout: Duration::from_millis(100),
        };
        let server = Server::start(cfg, |_ctx| {
            |mut stream: TcpStream, _peer| async move {
                let _ = stream.read(&mut [0u8; 1]).await;
            }
        })
        .unwrap();
        let mut held = vec![];
        for _ in 0..4 {
            let mut s = StdStream::connect(server.local_addr()).unwrap();
            if round % 2 == 0 {
                s.write_all(b"x").unwrap();
            }
            held.push(s);
        }
        std::thread::sleep(Duration::from_millis(50));
        server.shutdown_handle().trigger();
        server.join().unwrap();
        eprintln!(
            "round {round}: {} fds, {} threads",
            fds().len(),
            std::fs::read_dir("/proc/self/task").unwrap().count()
        );
    }
    let after = fds();
    eprintln!(
        "before {} after {}: {:?}",
        before.len(),
        after.len(),
        after
            .iter()
            .filter(|f| !before.contains(f))
            .collect::<Vec<_>>()
    );
}
