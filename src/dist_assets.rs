//! The files the .deb installs that are generated from the command-line definition, so they
//! never drift from it: the man pages `opsd(8)`, `opsd-SUBCOMMAND(8)` and the bash, zsh and
//! fish completion scripts. (`jobs.toml(5)` is written by hand: packaging/jobs.toml.5.)

use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// Writes `dir/man/*.8` and `dir/completions/{opsd.bash,_opsd,opsd.fish}` for `cmd`; returns
/// the files written.
pub fn write_assets(cmd: &mut clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut cmd = cmd.clone().disable_help_subcommand(true);
    cmd.build();
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    let mut written = Vec::new();
    write_man_pages(&cmd, &man, &mut written)?;
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let name = cmd.get_name().to_string();
        written.push(clap_complete::generate_to(
            shell,
            &mut cmd,
            name,
            &completions,
        )?);
    }
    Ok(written)
}

/// One section-8 page for `cmd` and one for each of its visible subcommands, recursively.
fn write_man_pages(
    cmd: &clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_pages(sub, dir, written)?;
    }
    let page = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Administration");
    written.push(page.generate_to(dir)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn writes_man_pages_for_each_visible_subcommand_and_three_completions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let written =
            write_assets(&mut crate::cli::Cli::command(), dir.path()).expect("write assets");
        let read = |rel: &str| {
            std::fs::read_to_string(dir.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
        };
        let top = read("man/opsd.8");
        assert!(top.contains(".TH opsd 8"), "opsd.8 header:\n{top}");
        assert!(
            top.contains("opsd\\-check(8)"),
            "opsd.8 does not list opsd-check(8):\n{top}"
        );
        let check = read("man/opsd-check.8");
        assert!(
            check.contains("\\-\\-config"),
            "opsd-check.8 lacks --config:\n{check}"
        );
        let status = read("man/opsd-status.8");
        assert!(
            status.contains("OPSD_SOCKET"),
            "opsd-status.8 lacks OPSD_SOCKET:\n{status}"
        );
        assert!(
            !status.contains("\\-\\-config"),
            "opsd-status.8 lists --config:\n{status}"
        );
        read("man/opsd-apache-doctor.8");
        assert!(
            !dir.path().join("man/opsd-dist-assets.8").exists(),
            "the hidden subcommand got a man page"
        );
        assert!(read("completions/opsd.bash").contains("run-job"));
        assert!(read("completions/_opsd").contains("#compdef opsd"));
        assert!(read("completions/opsd.fish").contains("complete -c opsd"));
        assert!(written.iter().all(|p| p.starts_with(dir.path())));
    }
}
