//! Encryption at rest (`encrypt_to`): a real node pulls from a real rsync
//! daemon and stores age ciphertext, never the plaintext; the result
//! records the ciphertext's size and blake3 next to the plaintext's;
//! `ubackup-server verify` checks the ciphertext without any key and finds
//! a changed byte.

use crate::common;

use std::time::Duration;

use age::secrecy::ExposeSecret;
use common::*;
use ubackup_catalog::{Catalog, CatalogRecord, SqliteCatalog};
use ubackup_common::fsutil::blake3_file;
use ubackup_common::ResultRecord;
use ubackup_transport::at_rest::{decrypt_file, fingerprint, Identities};

fn server(args: &[&str], conf: &std::path::Path) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ubackup-server"))
        .args(args)
        .arg("-c")
        .arg(conf)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_encrypt_to_stores_only_age_ciphertext_and_verify_checks_it_keyless() {
    let c = Cluster::start();
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public().to_string();
    let id_file = c.etc.path().join("identity.txt");
    std::fs::write(&id_file, id.to_string().expose_secret()).unwrap();
    // small ones (batched) and a large one (pulled on its own, hashed while
    // rsync writes it)
    let mut names: Vec<String> = (0..6).map(|i| format!("e{i}.xb")).collect();
    for (i, n) in names.iter().enumerate() {
        c.source_file(n, 10_000 + i * 3001, 60 + i as u64);
    }
    c.source_file("big.xb", 20 << 20, 70);
    names.push("big.xb".into());
    for n in &names {
        let mut m = c.message(n);
        let src = c.src.path().join("database_3306").join(n);
        m["checksum"] = blake3_file(&src).unwrap().into();
        c.push(&c.lo, &m);
    }
    let node = c.spawn("n1", &[("encrypt_to", recipient.as_str())]);
    let results = c.wait_results(names.len(), Duration::from_secs(60));
    let ids = Identities::load(&id_file).unwrap();
    let mut records = Vec::new();
    for r in &results {
        assert_eq!(r["succeed"], 1, "{r}\n{}", node.log_text());
        let name = r["filename"].as_str().unwrap();
        let src = c.src.path().join("database_3306").join(name);
        let stored = c.dest().join(name);
        let bytes = std::fs::read(&stored).unwrap();
        assert!(
            bytes.starts_with(b"age-encryption.org/v1\n"),
            "{name} is stored as age ciphertext"
        );
        assert_ne!(bytes, std::fs::read(&src).unwrap());
        let enc = &r["encryption"];
        assert_eq!(enc["format"], "age", "{r}");
        assert_eq!(
            enc["recipients"],
            serde_json::json!([fingerprint(&recipient)])
        );
        assert_eq!(enc["size"], bytes.len() as u64, "{r}");
        assert_eq!(enc["checksum"], blake3_file(&stored).unwrap(), "{r}");
        // `size` and `checksum` stay the plaintext's, as the client sent them
        assert_eq!(r["size"], std::fs::metadata(&src).unwrap().len(), "{r}");
        assert_eq!(r["checksum"], blake3_file(&src).unwrap(), "{r}");
        assert_eq!(r["verify"], "size+blake3", "{r}");
        let out = c.etc.path().join(format!("{name}.decrypted"));
        decrypt_file(&ids, &stored, &out).unwrap();
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&src).unwrap(),
            "{name}"
        );
        let rec: ResultRecord = serde_json::from_value(r.clone()).unwrap();
        records.push(CatalogRecord::new(rec, "g"));
    }
    let mut on_disk = files_in(&c.dest());
    on_disk.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(on_disk, want, "no plaintext or temp file next to them");
    assert!(
        c.tmp_leftovers("n1").is_empty(),
        "{:?}",
        c.tmp_leftovers("n1")
    );

    // verify, from the catalog the indexer would have written, without a key
    let catalog = c.etc.path().join("catalog.sqlite");
    SqliteCatalog::open(&catalog)
        .unwrap()
        .store(&records)
        .await
        .unwrap();
    let conf = c.config("n1", &[("catalog", catalog.to_str().unwrap())]);
    let (code, out, err) = server(&["verify"], &conf);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("{} ok, 0 missing or corrupt", names.len())),
        "{out}"
    );
    let victim = c.dest().join("e3.xb");
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&victim, bytes).unwrap();
    let (code, out, err) = server(&["verify"], &conf);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.contains("CORRUPT 111111:mysql:3306 e3.xb") && out.contains("checksum"),
        "{out}"
    );
    drop(node);
}

#[test]
fn encrypt_to_errors_name_the_key() {
    let c = Cluster::start();
    let conf = c.config("n1", &[("encrypt_to", "age1notakey")]);
    let (code, _, err) = server(&["--check"], &conf);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("[global] encrypt_to") && err.contains("age1notakey"),
        "{err}"
    );
}
