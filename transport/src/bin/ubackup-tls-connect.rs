//! `ubackup-tls-connect`: the program rsync runs (`-e`) to reach a daemon
//! behind a TLS terminator. The work is in `ubackup_transport::connect`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ubackup_transport::connect::{self, ConnectArgs};

/// Connects rsync to an rsync daemon behind TLS (stunnel): verifies the
/// peer's certificate against --ca and its name against HOST, presents
/// --cert/--key when given, and relays stdin/stdout. rsync runs it as
/// `rsync -e 'ubackup-tls-connect --port 874 --ca CA' rsync://HOST/module/...`;
/// operators never need to run it by hand.
///
/// Exit codes: 0 done, 5 a certificate was refused, 10 no connection, 12
/// the stream broke, 2 bad usage.
#[derive(Parser, Debug)]
#[command(name = "ubackup-tls-connect", version)]
struct Cli {
    /// The TLS port on HOST.
    #[arg(long, default_value_t = ubackup_transport::tls::DEFAULT_TLS_PORT)]
    port: u16,
    /// PEM file of the CA the peer's certificate must chain to.
    #[arg(long)]
    ca: PathBuf,
    /// Our client certificate (PEM), for peers that require one.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The key of --cert (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Seconds for connecting plus the TLS handshake.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// The remote user rsync passes for a remote shell; the daemon's own
    /// authentication carries it, so it is not used here.
    #[arg(short = 'l')]
    _user: Option<String>,
    /// The host from the rsync URL.
    host: String,
    /// The command a remote shell would run (`rsync --server --daemon .`);
    /// ignored: the TLS terminator starts the daemon.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    _remote_command: Vec<String>,
}

fn main() {
    let cli = Cli::parse();
    let args = ConnectArgs {
        host: cli.host,
        port: cli.port,
        ca: cli.ca,
        cert: cli.cert,
        key: cli.key,
        timeout: Duration::from_secs(cli.timeout.max(1)),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ubackup-tls-connect: cannot start: {e}");
            std::process::exit(12);
        }
    };
    let code = match rt.block_on(connect::run(&args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{}", e.line(&args));
            e.exit_code()
        }
    };
    // exit at once: the thread blocked reading stdin would hold up a
    // runtime shutdown, and rsync waits for us to exit
    std::process::exit(code);
}
