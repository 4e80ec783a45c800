//! Destiny's key material: dealt owner-only, loaded and checked against the
//! cluster's n and f (moved from the node, which knows no protocol's keys).

use quorate_core::keys::KeyMaterial;
use quorate_core::ReplicaId;
use quorate_dqbft::flavor::{threshold_file_names, DestinyKeys, THRESHOLD_PUBLIC_FILE};

#[test]
fn threshold_keys_are_dealt_owner_only_and_load_checked() {
    let dir = tempfile::tempdir().unwrap();
    DestinyKeys::deal_into(dir.path(), 3, 1, &mut rand::rngs::OsRng).unwrap();
    let public = DestinyKeys::load_public(dir.path(), 3, 1).unwrap().unwrap();
    for r in 0..3 {
        let k = DestinyKeys::load(dir.path(), ReplicaId(r), 3, 1).unwrap();
        let DestinyKeys::Dealt { trusted, public: p, .. } = &k else { panic!("dealt keys load as dealt") };
        assert_eq!(*p, public);
        assert!(!format!("{k:?}").contains(&format!("{:?}", &trusted[..8])), "no secret in Debug");
        #[cfg(unix)]
        for file in <[String; 2]>::from(threshold_file_names(ReplicaId(r))) {
            let meta = std::fs::metadata(dir.path().join(file)).unwrap();
            assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
        }
    }
    let e = DestinyKeys::load(dir.path(), ReplicaId(3), 3, 1).unwrap_err().to_string();
    assert!(e.contains("replica-3.threshold-trusted.key"), "{e}");
    // A cluster that says f = 0 (n = 3 would allow it): not the group dealt.
    let e = DestinyKeys::load(dir.path(), ReplicaId(0), 3, 0).unwrap_err().to_string();
    assert!(e.contains(THRESHOLD_PUBLIC_FILE) && e.contains("expected n = 3 and threshold 1"), "{e}");
    assert!(e.starts_with("threshold keys "), "{e}");
}

#[test]
fn missing_public_material_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = DestinyKeys::load_public(dir.path(), 3, 1).unwrap_err().to_string();
    assert!(e.contains("threshold-group.pub") && e.contains("No such file"), "{e}");
}
