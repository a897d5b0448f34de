//! The files the .deb installs that are generated from the command-line definition, so they
//! never drift from it: the man pages `opsd(8)`, `opsd-SUBCOMMAND(8)` and the bash, zsh and
//! fish completion scripts. (`jobs.toml(5)` is written by hand: packaging/jobs.toml.5.)

use super::Cli;
use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The installed program's name, which the completion scripts complete.
const BIN_NAME: &str = "opsd";

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
    let mut visible = completion_command(&cmd);
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let name = visible.get_name().to_string();
        written.push(clap_complete::generate_to(
            shell,
            &mut visible,
            name,
            &completions,
        )?);
    }
    Ok(written)
}

/// Writes the `shell` completion script for `cmd` to `out`: the same script the package
/// installs, so `opsd completions bash` and /usr/share/bash-completion never differ.
pub fn write_completion(cmd: &clap::Command, shell: Shell, out: &mut dyn std::io::Write) {
    let mut cmd = cmd.clone().disable_help_subcommand(true);
    cmd.build();
    let mut visible = completion_command(&cmd);
    let name = visible.get_name().to_string();
    clap_complete::generate(shell, &mut visible, name, out);
}

/// `cmd` without its hidden subcommands, which clap_complete would otherwise offer (it
/// completes every subcommand it is given). clap cannot remove a subcommand, so this builds
/// the command anew from the visible parts.
fn completion_command(cmd: &clap::Command) -> clap::Command {
    clap::Command::new(BIN_NAME)
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true)
        // The built `cmd` already holds its --help and --version; copied below.
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
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

/// `opsd completions SHELL`: prints the completion script the package installs for `shell`.
pub(super) fn completions(shell: Shell) -> anyhow::Result<ExitCode> {
    write_completion(&Cli::command(), shell, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// `opsd dist-assets DIR`: writes the man pages and completion scripts into `dir` and prints
/// each file written.
pub(super) fn dist_assets(dir: &Path) -> anyhow::Result<ExitCode> {
    let written = write_assets(&mut Cli::command(), dir)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn writes_man_pages_for_each_visible_subcommand_and_three_completions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let written = write_assets(&mut super::Cli::command(), dir.path()).expect("write assets");
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
        let bash = read("completions/opsd.bash");
        assert!(bash.contains("run-job"));
        assert!(
            !bash.contains("dist-assets"),
            "completions offer a hidden subcommand"
        );
        let mut printed = Vec::new();
        write_completion(&super::Cli::command(), Shell::Bash, &mut printed);
        assert_eq!(
            String::from_utf8_lossy(&printed),
            bash,
            "`opsd completions bash` differs from the packaged script"
        );
        assert!(read("completions/_opsd").contains("#compdef opsd"));
        assert!(read("completions/opsd.fish").contains("complete -c opsd"));
        assert!(written.iter().all(|p| p.starts_with(dir.path())));
    }
}
