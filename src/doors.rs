//! Close every door: nothing rewheel inherited crosses into a process it starts. No descriptor
//! above 2, whatever rewheel's own parent left open (`rewheel build 3>>FILE` would otherwise
//! hand FILE to every build, through the sandbox), and no ignored signal (`nohup rewheel …`
//! would otherwise start every build with SIGHUP ignored: a build's behaviour must not depend
//! on how rewheel was started). Rust opens its own descriptors close-on-exec; these cover what
//! was inherited and anything a library might open without the flag.

/// Mark every inherited descriptor above 2 close-on-exec: called first thing in `main`.
pub fn close_inherited() {
    // SAFETY: only flags on descriptors change; none is closed under a live owner.
    let done = unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) } == 0;
    if !done {
        cloexec_one_by_one();
    }
}

/// For `pre_exec`, between fork and exec: the same, in the child, and every signal back to
/// its default action (async-signal-safe; handlers are reset by exec, ignored signals are not).
pub fn in_child() -> std::io::Result<()> {
    close_inherited();
    // SAFETY: each call changes only this (child) process's own state, before exec.
    unsafe {
        for signal in 1..libc::SIGRTMIN() {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
        // Blocked signals survive exec too.
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        // A parent's `setarch -R` or `--uname-2.6` would vary the build unasked; the
        // variations that mean to set them do so after this, in the job's command.
        libc::personality(0);
        // A session keyring of its own: the parent's keys are not the build's.
        libc::syscall(
            libc::SYS_keyctl,
            1, /* KEYCTL_JOIN_SESSION_KEYRING */
            0usize,
        );
        // Niceness and the limits a job does not get from `apply_limits` at fixed values, not
        // the parent's (a `nice` or `ulimit -s unlimited` around rewheel).
        libc::setpriority(libc::PRIO_PROCESS, 0, 0);
        // Both values where rewheel may raise them (root), else the soft one within the hard.
        let set = |resource, value: u64| {
            let wanted = libc::rlimit {
                rlim_cur: value as libc::rlim_t,
                rlim_max: libc::RLIM_INFINITY,
            };
            let mut limit: libc::rlimit = std::mem::zeroed();
            if libc::setrlimit(resource, &wanted) != 0 && libc::getrlimit(resource, &mut limit) == 0
            {
                limit.rlim_cur = (value as libc::rlim_t).min(limit.rlim_max);
                libc::setrlimit(resource, &limit);
            }
        };
        set(libc::RLIMIT_CPU, libc::RLIM_INFINITY);
        set(libc::RLIMIT_STACK, 8 << 20);
    }
    Ok(())
}

/// Kernels before 5.11 lack `CLOSE_RANGE_CLOEXEC`: every descriptor the limit allows, in turn.
fn cloexec_one_by_one() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct; fcntl on a closed descriptor only fails with EBADF.
    unsafe {
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur.min(1 << 20) as i32
        } else {
            1024
        };
        for fd in 3..max {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_inherited_descriptor_is_closed_at_exec() {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let file = tempfile::tempfile().unwrap();
        // Inherited as a parent would leave it: without close-on-exec, at a high number.
        // SAFETY: dup2 onto an unused number; fcntl clears the flag on our own descriptor.
        let fd = unsafe { libc::dup2(file.as_raw_fd(), 987) };
        assert_eq!(fd, 987);
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        let probe = |closing: bool| {
            let mut command = std::process::Command::new("/bin/sh");
            command.args(["-c", "[ -e /proc/self/fd/987 ] && echo open || echo closed"]);
            if closing {
                // SAFETY: in_child only changes descriptor flags.
                unsafe { command.pre_exec(super::in_child) };
            }
            String::from_utf8(command.output().unwrap().stdout).unwrap()
        };
        assert_eq!(probe(false).trim(), "open", "the test's own premise");
        assert_eq!(probe(true).trim(), "closed");
        unsafe { libc::close(fd) };
    }
}
