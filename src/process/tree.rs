//! What `/proc` says about processes: parent, state and start time, children, and whether a
//! process carries a given environment variable. Every read may fail because the process has
//! just ended; such a process is treated as gone.

use std::fs;

/// One process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The parent's pid.
    pub ppid: i32,
    /// The state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Start time in clock ticks since boot: with the pid, it names one process for good.
    pub start: u64,
}

impl ProcStat {
    /// True unless the process has ended and waits to be reaped.
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// Reads `/proc/PID/stat`, or `None` when the process is gone.
pub fn stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses a stat line; the command name may hold spaces and ')', so fields are counted from
/// its last ')'.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... starttime(22), so indexes 0, 1 and 19 here.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// The pids whose parent is `pid`, from `/proc/PID/task/*/children`.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// The children of `pid`'s main thread only (`/proc/PID/task/PID/children`): one file, where
/// [`children`] reads one per thread. A process orphaned below a child subreaper is
/// re-parented to the subreaper's first living thread, its main thread while that runs.
pub fn main_thread_children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `pid`'s descendants (not `pid` itself), parents before their children.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut next = children(pid);
    while let Some(p) = next.pop() {
        if out.contains(&p) {
            continue;
        }
        out.push(p);
        next.extend(children(p));
    }
    out
}

/// Every pid in `/proc`.
pub fn all_pids() -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// The value of `name` in the environment `pid` was started with, or `None` when it has none
/// or it cannot be read (gone, a zombie, or another user's process to a non-root daemon).
pub fn env_var(pid: i32, name: &str) -> Option<Vec<u8>> {
    let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
    find_var(&environ, name)
}

/// Looks `name` up in a NUL-separated `NAME=value` block.
fn find_var(environ: &[u8], name: &str) -> Option<Vec<u8>> {
    environ.split(|&b| b == 0).find_map(|entry| {
        entry
            .strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
            .map(<[u8]>::to_vec)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_and_parens_in_the_name_is_read() {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 1 2 3\n";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                ppid: 7,
                state: 'S',
                start: 123456
            })
        );
    }

    #[test]
    fn a_variable_is_found_only_by_its_whole_name() {
        let env = b"XOPSD_RUN_ID=no\0OPSD_RUN_ID=abc\0OPSD_RUN_IDX=no\0";
        assert_eq!(find_var(env, "OPSD_RUN_ID"), Some(b"abc".to_vec()));
        assert_eq!(find_var(env, "RUN"), None);
    }

    #[test]
    fn this_process_is_its_parents_child() {
        let me = std::process::id() as i32;
        let st = stat(me).expect("own stat");
        assert!(st.alive());
        assert!(children(st.ppid).contains(&me));
        assert!(all_pids().contains(&me));
    }
}
