//! A cluster file's per-replica `weight` builds a weighted membership.

use ed25519_dalek::SigningKey;
use quorate_modsmart::ModSmart;
use quorate_node::config::ClusterConfig;
use std::path::Path;

fn file(weights: &[&str]) -> String {
    let mut s = String::from("protocol = \"mod-smart\"\nf = 1\n");
    for (i, w) in weights.iter().enumerate() {
        let key = hex::encode(SigningKey::from_bytes(&[i as u8 + 1; 32]).verifying_key().to_bytes());
        s.push_str(&format!(
            "[[replicas]]\nid = {i}\naddress = \"127.0.0.1:{}\"\npublic_key = \"{key}\"\n{w}",
            7000 + i
        ));
    }
    s
}

#[test]
fn unit_weights_give_the_unweighted_membership() {
    let plain = ClusterConfig::parse(&file(&["", "", "", ""]), Path::new("c.toml")).unwrap();
    let unit = ClusterConfig::parse(&file(&["weight = 1\n"; 4]), Path::new("c.toml")).unwrap();
    assert_eq!(plain.membership::<ModSmart>().unwrap(), unit.membership::<ModSmart>().unwrap());
    assert!(!unit.membership::<ModSmart>().unwrap().is_weighted());
}

#[test]
fn bad_or_unsupported_weights_are_refused_with_the_field() {
    let zero = ClusterConfig::parse(&file(&["weight = 0\n", "", "", ""]), Path::new("c.toml")).unwrap();
    let e = zero.membership::<ModSmart>().unwrap_err().to_string();
    assert!(e.contains("replicas") && e.contains("weight of replica 0 is zero"), "{e}");
    let heavy = ClusterConfig::parse(&file(&["weight = 2\n", "", "", ""]), Path::new("c.toml")).unwrap();
    let e = heavy.membership::<ModSmart>().unwrap_err().to_string();
    assert!(e.contains("mod-smart") && e.contains("every weight must be 1"), "{e}");
    let e = ClusterConfig::parse(&file(&["weight = -1\n", "", "", ""]), Path::new("c.toml")).unwrap_err().to_string();
    assert!(e.contains("weight"), "{e}");
}
