//! Builds a command run's process: its argv, clean environment, own process group, and the
//! credentials of `user`/`group` with the user's supplementary groups, as cron and systemd's
//! `User=` give them (a job run as a member of `adm` can read `/var/log`).

use super::env::{self, EnvInputs, RunUser};
use super::CommandSpec;
use crate::jobs::RunContext;
use crate::process::cgroup::RunCgroup;
use nix::unistd::{Gid, Uid, User};
use std::ffi::CString;
use std::process::Stdio;
use tokio::process::Command;

/// The ids a run switches to before it starts its program.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Credentials {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
}

/// Builds the process to spawn, with its environment, process group, cgroup (when the run has
/// one) and credentials applied.
pub(super) async fn build(
    spec: &CommandSpec,
    ctx: &RunContext,
    cgroup: Option<&RunCgroup>,
) -> Result<Command, String> {
    let (program, args) = spec
        .command
        .get_ref()
        .program_and_args()
        .ok_or("empty command")?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    if let Some(dir) = &spec.working_dir {
        cmd.current_dir(dir.get_ref());
    }
    // Joined while the child still has the daemon's rights, before it switches user below.
    if let Some(cg) = cgroup {
        cg.join_at_exec(&mut cmd);
    }
    let root = nix::unistd::geteuid().is_root();
    let group = match &spec.group {
        Some(name) => {
            let g = crate::account::group(name.get_ref())
                .ok_or_else(|| format!("no such group {:?}", name.get_ref()))?;
            if !root {
                return Err(format!(
                    "group = {:?} needs the daemon to run as root",
                    name.get_ref()
                ));
            }
            Some(g.gid)
        }
        None => None,
    };
    let run_user = match &spec.user {
        Some(name) => {
            let u = crate::account::user(name.get_ref())
                .ok_or_else(|| format!("no such user {:?}", name.get_ref()))?;
            if !root {
                return Err(format!(
                    "user = {:?} needs the daemon to run as root",
                    name.get_ref()
                ));
            }
            let creds = credentials(&u, group)?;
            // SAFETY: the closure runs between fork and exec and calls only setgroups, setgid
            // and setuid, which are async-signal-safe; the group list was built before the fork.
            unsafe {
                cmd.pre_exec(move || switch_to(&creds));
            }
            RunUser::from(&u)
        }
        None => {
            if let Some(gid) = group {
                cmd.gid(gid.as_raw());
            }
            RunUser::current()
        }
    };
    let pass_env: Vec<String> = spec.pass_env.iter().map(|n| n.get_ref().clone()).collect();
    // Read at each run, so that a rotated secret is picked up without a reload.
    let env_file = match spec.env_file_path() {
        Some((path, optional)) => read_env_file(path, optional, ctx).await?,
        None => Vec::new(),
    };
    let vars = env::build(
        &EnvInputs {
            job: &ctx.job,
            run_id: &ctx.run_id,
            user: &run_user,
            timezone: &spec.timezone,
            pass_env: &pass_env,
            env_file: &env_file,
            env: &spec.env,
        },
        |name| std::env::var_os(name),
    );
    let mut vars = vars;
    if let Some(token) = ctx.fencing_token {
        vars.insert("OPSD_FENCING_TOKEN".into(), token.to_string().into());
    }
    cmd.env_clear().envs(vars);
    Ok(cmd)
}

/// Reads the run's `env_file` on a blocking thread, so that a slow disk or a hung network
/// mount stalls this run only, never the async threads every other job, timer and the
/// control socket share; a cancel (timeout, shutdown) ends the wait.
async fn read_env_file(
    path: std::path::PathBuf,
    optional: bool,
    ctx: &RunContext,
) -> Result<Vec<(String, String)>, String> {
    let shown = path.display().to_string();
    let read = tokio::task::spawn_blocking(move || env::read_env_file(&path, optional));
    tokio::select! {
        read = read => match read {
            Ok(vars) => vars.map_err(|e| e.to_string()),
            Err(e) => Err(format!("env_file {shown}: reading it failed: {e}")),
        },
        () = ctx.cancel.cancelled() => Err(format!("env_file {shown}: cancelled while reading it")),
    }
}

/// The ids of `user`, with `group` as the primary group when given, and every group the group
/// database lists `user` in.
fn credentials(user: &User, group: Option<Gid>) -> Result<Credentials, String> {
    let gid = group.unwrap_or(user.gid);
    let name = CString::new(user.name.as_bytes())
        .map_err(|_| format!("user name {:?} contains a NUL byte", user.name))?;
    let groups = nix::unistd::getgrouplist(&name, gid)
        .map_err(|e| format!("cannot list the groups of user {:?}: {e}", user.name))?;
    Ok(Credentials {
        uid: user.uid,
        gid,
        groups,
    })
}

/// Switches the calling (forked, not yet exec'd) process to `creds`: groups first, while it
/// still may, then the gid, then the uid.
fn switch_to(creds: &Credentials) -> std::io::Result<()> {
    nix::unistd::setgroups(&creds.groups)?;
    nix::unistd::setgid(creds.gid)?;
    nix::unistd::setuid(creds.uid)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_credentials_hold_its_primary_group_and_the_named_one() {
        let root = User::from_uid(Uid::from_raw(0))
            .ok()
            .flatten()
            .expect("root has a passwd entry");
        let creds = credentials(&root, None).expect("root's groups");
        assert_eq!(creds.gid, root.gid);
        assert!(creds.groups.contains(&root.gid));
        let other = Gid::from_raw(65534);
        let creds = credentials(&root, Some(other)).expect("root's groups");
        assert_eq!(creds.gid, other);
        assert!(creds.groups.contains(&other));
    }
}
