//! CPU selection: which CPUs this process may run on, parsing `--cpus` lists,
//! and turning `--cores` / `--cpus` into the list of CPUs that get a shard.
//!
//! Errors are one-line strings written for the person at the command line:
//! they say what is wrong and what to type instead.

/// Highest CPU id we accept plus one. `sched_getaffinity` with a `cpu_set_t`
/// cannot describe more, and the cap keeps a typo like `0-4000000000` from
/// allocating a giant list.
const MAX_CPUS: usize = libc::CPU_SETSIZE as usize;

/// Online CPUs of this process's affinity mask (sched_getaffinity via libc),
/// ascending.
///
/// The affinity mask, not `/sys/devices/system/cpu/online`, is what matters:
/// under `taskset`, cgroup cpusets or a container, pinning a shard to a CPU
/// outside the mask fails.
pub fn online_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bitmask for which all-zero is valid, and
    // we pass its exact size to the kernel.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        set
    };
    // SAFETY: CPU_ISSET only reads the bitmask; MAX_CPUS is its size in bits.
    Ok((0..MAX_CPUS)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Parses "0,2-5" into [0,2,3,4,5]; errors are one line and say what is wrong
/// ("bad CPU list '0,x': 'x' is not a number").
///
/// The result is ascending. A CPU named twice is an error rather than being
/// silently merged, because two shards on one CPU is never what was meant.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let bad = |why: String| format!("bad CPU list '{s}': {why}");
    if s.trim().is_empty() {
        return Err(bad("it is empty; write e.g. '0,2-5'".into()));
    }
    let mut cpus = Vec::new();
    for entry in s.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(bad("empty entry between commas".into()));
        }
        let (lo, hi) = match entry.split_once('-') {
            Some((lo, hi)) => (
                parse_cpu(lo.trim()).map_err(bad)?,
                parse_cpu(hi.trim()).map_err(bad)?,
            ),
            None => {
                let cpu = parse_cpu(entry).map_err(bad)?;
                (cpu, cpu)
            }
        };
        if lo > hi {
            return Err(bad(format!(
                "range '{entry}' runs backwards; write '{hi}-{lo}'"
            )));
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    if let Some(pair) = cpus.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(format!("CPU {} is listed twice", pair[0])));
    }
    Ok(cpus)
}

fn parse_cpu(s: &str) -> Result<usize, String> {
    let cpu: usize = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if cpu >= MAX_CPUS {
        return Err(format!("CPU {cpu} is out of range (max {})", MAX_CPUS - 1));
    }
    Ok(cpu)
}

/// Formats CPUs compactly the way `parse_cpu_list` reads them: [0,1,2,5] ->
/// "0-2,5". Used in error messages and startup logs.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        let end = sorted[i];
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// cores=N takes the first N online CPUs; cpus names them explicitly (each
/// must be online); neither -> all online. Both -> error.
///
/// Errors are one line and say what to fix, e.g. "--cores 64: only 2 CPUs are
/// online (0-1); use --cores 2 or less".
pub fn select_cpus(cores: Option<usize>, cpus: Option<&[usize]>) -> Result<Vec<usize>, String> {
    let online =
        online_cpus().map_err(|e| format!("cannot read this process's CPU affinity: {e}"))?;
    select_from(&online, cores, cpus)
}

/// The logic of [`select_cpus`] against a given online set, so that it can be
/// tested without depending on the machine running the tests.
fn select_from(
    online: &[usize],
    cores: Option<usize>,
    cpus: Option<&[usize]>,
) -> Result<Vec<usize>, String> {
    let online_desc = format_cpu_list(online);
    match (cores, cpus) {
        (Some(_), Some(_)) => Err(
            "--cores and --cpus cannot be used together; pick one (--cores N or --cpus LIST)"
                .into(),
        ),
        (Some(0), None) => Err(format!(
            "--cores 0: need at least 1 core; use --cores 1 to --cores {}",
            online.len()
        )),
        (Some(n), None) if n > online.len() => Err(format!(
            "--cores {n}: only {} CPUs are online ({online_desc}); use --cores {} or less",
            online.len(),
            online.len()
        )),
        (Some(n), None) => Ok(online[..n].to_vec()),
        (None, Some([])) => Err(format!(
            "--cpus: the CPU list is empty; name CPUs from {online_desc}"
        )),
        (None, Some(list)) => {
            let mut list = list.to_vec();
            list.sort_unstable();
            if let Some(pair) = list.windows(2).find(|w| w[0] == w[1]) {
                return Err(format!("--cpus: CPU {} is listed twice", pair[0]));
            }
            let offline: Vec<usize> = list
                .iter()
                .copied()
                .filter(|c| !online.contains(c))
                .collect();
            if !offline.is_empty() {
                return Err(format!(
                    "--cpus {}: {} not online for this process (online: {online_desc})",
                    format_cpu_list(&list),
                    if offline.len() == 1 {
                        format!("CPU {} is", offline[0])
                    } else {
                        format!("CPUs {} are", format_cpu_list(&offline))
                    }
                ));
            }
            Ok(list)
        }
        (None, None) if online.is_empty() => {
            Err("no CPUs are online for this process (empty affinity mask)".into())
        }
        (None, None) => Ok(online.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_singles_and_ranges() {
        assert_eq!(parse_cpu_list("0,2-5").unwrap(), vec![0, 2, 3, 4, 5]);
        assert_eq!(parse_cpu_list("7").unwrap(), vec![7]);
        assert_eq!(parse_cpu_list(" 3 , 1 ").unwrap(), vec![1, 3]);
        assert_eq!(parse_cpu_list("4-4").unwrap(), vec![4]);
    }

    #[test]
    fn parse_errors_name_the_problem() {
        assert_eq!(
            parse_cpu_list("0,x").unwrap_err(),
            "bad CPU list '0,x': 'x' is not a number"
        );
        assert_eq!(
            parse_cpu_list("5-2").unwrap_err(),
            "bad CPU list '5-2': range '5-2' runs backwards; write '2-5'"
        );
        assert_eq!(
            parse_cpu_list("0,,1").unwrap_err(),
            "bad CPU list '0,,1': empty entry between commas"
        );
        assert_eq!(
            parse_cpu_list("0-2,1").unwrap_err(),
            "bad CPU list '0-2,1': CPU 1 is listed twice"
        );
        assert!(parse_cpu_list("").unwrap_err().contains("empty"));
        assert!(parse_cpu_list("-3")
            .unwrap_err()
            .contains("'' is not a number"));
        assert!(parse_cpu_list("0-99999999999")
            .unwrap_err()
            .contains("out of range"));
        for input in ["", "a", "1-", "1,2-x", "0-4000000000"] {
            let err = parse_cpu_list(input).unwrap_err();
            assert!(!err.contains('\n'), "multi-line error for {input:?}: {err}");
        }
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format_cpu_list(&[0, 1, 2, 5]), "0-2,5");
        assert_eq!(format_cpu_list(&[3]), "3");
        assert_eq!(format_cpu_list(&[]), "");
        assert_eq!(format_cpu_list(&[5, 0, 1, 7, 6]), "0-1,5-7");
        let list = [0, 2, 3, 4, 9];
        assert_eq!(parse_cpu_list(&format_cpu_list(&list)).unwrap(), list);
    }

    #[test]
    fn selects_by_count_list_or_all() {
        let online = [0, 1, 2, 3];
        assert_eq!(select_from(&online, None, None).unwrap(), online);
        assert_eq!(select_from(&online, Some(2), None).unwrap(), vec![0, 1]);
        assert_eq!(
            select_from(&online, None, Some(&[3, 1])).unwrap(),
            vec![1, 3]
        );
    }

    #[test]
    fn selection_errors_say_what_to_fix() {
        let online = [0, 1];
        assert_eq!(
            select_from(&online, Some(64), None).unwrap_err(),
            "--cores 64: only 2 CPUs are online (0-1); use --cores 2 or less"
        );
        assert_eq!(
            select_from(&online, None, Some(&[0, 5])).unwrap_err(),
            "--cpus 0,5: CPU 5 is not online for this process (online: 0-1)"
        );
        assert_eq!(
            select_from(&online, None, Some(&[0, 5, 6])).unwrap_err(),
            "--cpus 0,5-6: CPUs 5-6 are not online for this process (online: 0-1)"
        );
        assert!(select_from(&online, Some(1), Some(&[0]))
            .unwrap_err()
            .contains("together"));
        assert!(select_from(&online, Some(0), None)
            .unwrap_err()
            .contains("at least 1"));
        assert!(select_from(&online, None, Some(&[]))
            .unwrap_err()
            .contains("empty"));
        assert!(select_from(&online, None, Some(&[1, 1]))
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn this_machine_has_online_cpus() {
        let online = online_cpus().unwrap();
        assert!(!online.is_empty());
        assert!(online.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(select_cpus(None, None).unwrap(), online);
        assert_eq!(select_cpus(Some(1), None).unwrap(), vec![online[0]]);
    }
}
