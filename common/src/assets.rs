//! A binary's man pages and shell completions, generated from its own clap
//! definition (so they never drift from `--help`). The Debian packages
//! ship them (deploy/debian/build-debs.sh); nothing else needs them.
//!
//! Every binary answers `BIN --generate-assets DIR` (first argument, hidden
//! from `--help` because clap never sees it) through [`intercept`], which
//! writes:
//!
//! * `DIR/man/BIN.1`, and `DIR/man/BIN-SUB.1` for each subcommand;
//! * `DIR/completions/bash/BIN`, `DIR/completions/zsh/_BIN`,
//!   `DIR/completions/fish/BIN.fish`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// The hidden first argument that asks for the assets.
pub const FLAG: &str = "--generate-assets";

/// If the command line is `BIN --generate-assets DIR`, writes the assets
/// of `cmd()` under DIR, prints each file written and returns the exit
/// code (0 written, 1 a write failed, 2 no DIR); otherwise `None`, and the
/// binary parses its command line as usual.
pub fn intercept(cmd: impl FnOnce() -> clap::Command) -> Option<u8> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_none_or(|a| a != FLAG) {
        return None;
    }
    let [_, dir] = args.as_slice() else {
        eprintln!("usage: {} {FLAG} DIR", cmd().get_name());
        return Some(2);
    };
    match write(cmd(), Path::new(dir)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            Some(0)
        }
        Err(e) => {
            eprintln!("{FLAG} {}: {e}", Path::new(dir).display());
            Some(1)
        }
    }
}

/// Writes the man pages and completions of `cmd` under `dir` (layout in
/// the module docs); returns the files written.
pub fn write(mut cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    cmd.build();
    let bin = cmd.get_name().to_string();
    let mut out = Vec::new();
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    man_pages(&cmd, &man, &mut out)?;
    for (shell, sub, file) in [
        (Shell::Bash, "bash", bin.clone()),
        (Shell::Zsh, "zsh", format!("_{bin}")),
        (Shell::Fish, "fish", format!("{bin}.fish")),
    ] {
        let d = dir.join("completions").join(sub);
        std::fs::create_dir_all(&d)?;
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, &bin, &mut buf);
        let path = d.join(file);
        std::fs::write(&path, buf)?;
        out.push(path);
    }
    Ok(out)
}

/// `NAME.1` for `cmd`, then one page per visible subcommand (clap's
/// display name after `build`: `BIN-SUB`).
fn man_pages(cmd: &clap::Command, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone().name(name.clone().leak() as &str)).render(&mut buf)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, buf)?;
    out.push(path);
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        man_pages(sub, dir, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_page_per_subcommand_and_three_completions() {
        let cmd = clap::Command::new("ubackup-x")
            .version("1.0")
            .about("an example")
            .arg(clap::arg!(-c --config <FILE> "the config"))
            .subcommand(clap::Command::new("check").about("check it"))
            .subcommand(clap::Command::new("secret").hide(true));
        let tmp = tempfile::tempdir().unwrap();
        let files = write(cmd, tmp.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(tmp.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "man/ubackup-x.1",
                "man/ubackup-x-check.1",
                "completions/bash/ubackup-x",
                "completions/zsh/_ubackup-x",
                "completions/fish/ubackup-x.fish",
            ]
        );
        let page = std::fs::read_to_string(tmp.path().join("man/ubackup-x.1")).unwrap();
        assert!(page.contains(".TH ubackup-x 1"), "{page}");
        assert!(page.contains("config"), "{page}");
        let sub = std::fs::read_to_string(tmp.path().join("man/ubackup-x-check.1")).unwrap();
        assert!(sub.contains("check it"), "{sub}");
    }
}
