//! Users and groups looked up by name in the system's account database (`getpwnam`,
//! `getgrnam`, through NSS): the one place opsd does it, for config validation, the files a
//! job needs, a run's identity and the control socket's group. Imports nothing of ours.
//!
//! A database that cannot be read counts as no such account: opsd then refuses what named it,
//! as for a name that is not there.

use nix::unistd::{Group, User};

/// The user called `name`, or `None` when there is none (or the database cannot be read).
pub fn user(name: &str) -> Option<User> {
    User::from_name(name).ok().flatten()
}

/// The group called `name`, or `None` when there is none (or the database cannot be read).
pub fn group(name: &str) -> Option<Group> {
    Group::from_name(name).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_and_a_made_up_name_is_not() {
        assert_eq!(user("root").map(|u| u.uid.as_raw()), Some(0));
        assert_eq!(group("root").map(|g| g.gid.as_raw()), Some(0));
        assert!(user("opsd-no-such-user-x").is_none());
        assert!(group("opsd-no-such-group-x").is_none());
    }
}
