use super::*;
use crate::tool::parse_version;
use std::net::TcpListener;
use vigil_core::manifest::Membership;

#[test]
fn versions_and_ports() {
    assert_eq!(
        parse_version(
            "etcdctl version: 3.4.23\nAPI version: 3.4\n",
            "etcdctl version:"
        ),
        Some(("3.4.23".into(), (3, 4)))
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let m = PlannedMember {
        name: "cp-1".into(),
        client_url: format!("http://127.0.0.1:{port}"),
        peer_urls: vec!["http://10.255.255.1:2380".into()],
        from: PeerFrom::Config,
    };
    let e = check_ports_free(std::slice::from_ref(&m))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cp-1 client port") && e.contains("tocommit"),
        "{e}"
    );
    drop(l);
    // Another test in this binary may take the freed ephemeral port at once, so a
    // free port has to pass on one of a few fresh tries rather than on this one.
    let passes = (0..5).any(|_| {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let m = PlannedMember {
            client_url: format!("http://127.0.0.1:{port}"),
            ..m.clone()
        };
        check_ports_free(&[m]).is_ok()
    });
    assert!(passes, "no free port passed check_ports_free in five tries");
}

fn member(name: &str, host: &str, peer_url: Option<&str>) -> MemberConfig {
    MemberConfig {
        name: name.into(),
        endpoint: format!("http://{host}:2379"),
        peer_url: peer_url.map(String::from),
    }
}

fn recorded(members: &[(&str, &str, bool)]) -> Membership {
    Membership {
        cluster_id: "c1".into(),
        members: members
            .iter()
            .enumerate()
            .map(
                |(i, (n, peer, learner))| vigil_core::manifest::RecordedMember {
                    id: format!("{:x}", i + 1),
                    name: n.to_string(),
                    peer_urls: vec![peer.to_string()],
                    client_urls: vec![peer.replace("380", "379")],
                    is_learner: *learner,
                    etcd_version: None,
                },
            )
            .collect(),
    }
}

fn urls(p: &Plan) -> Vec<(String, String, PeerFrom)> {
    p.members
        .iter()
        .map(|m| (m.name.clone(), m.peer_url(), m.from))
        .collect()
}

#[test]
fn peer_urls_come_from_flag_then_config_then_record_then_guess() {
    let cfg = [
        member("a", "10.0.0.1", None),
        member("b", "10.0.0.2", Some("http://10.0.0.2:12380/")),
        member("c", "10.0.0.3", None),
    ];
    let m: Vec<&MemberConfig> = cfg.iter().collect();
    let rec = recorded(&[
        ("a", "http://10.0.0.1:2381", false),
        ("b", "http://10.0.0.2:2381", false),
        ("c", "http://10.0.0.3:2381", false),
        ("d", "http://10.0.0.4:2380", true),
    ]);
    let flags = vec![("c".to_string(), "http://10.9.9.9:2380".to_string())];
    let p = plan_members(&m, Some(&rec), "A", &flags, &[]).unwrap();
    assert_eq!(
        urls(&p),
        [
            (
                "a".into(),
                "http://10.0.0.1:2381".into(),
                PeerFrom::Manifest
            ),
            ("b".into(), "http://10.0.0.2:12380".into(), PeerFrom::Config),
            ("c".into(), "http://10.9.9.9:2380".into(), PeerFrom::Flag),
        ]
    );
    // The learner is left out, and said so.
    assert!(
        p.notes.iter().any(|n| n.contains("member d")),
        "{:?}",
        p.notes
    );
    assert_eq!(
        initial_cluster(&p.members),
        "a=http://10.0.0.1:2381,b=http://10.0.0.2:12380,c=http://10.9.9.9:2380"
    );
    // An old archive: the config, else the host:2380 guess.
    let p = plan_members(&m, None, "A", &[], &[]).unwrap();
    assert_eq!(p.members[0].peer_url(), "http://10.0.0.1:2380");
    assert_eq!(p.members[0].from, PeerFrom::Guess);
    assert_eq!(p.members[1].from, PeerFrom::Config);
}

#[test]
fn every_membership_problem_is_named_at_once() {
    // Three members on one host, an old archive: the guess collides.
    let one_host: Vec<MemberConfig> = ["a", "b", "c"]
        .iter()
        .map(|n| member(n, "127.0.0.1", None))
        .collect();
    let m: Vec<&MemberConfig> = one_host.iter().collect();
    let e = plan_members(&m, None, "A", &[], &[]).unwrap_err();
    assert_eq!(e.exit_code(), vigil_core::exit::USAGE);
    let e = e.to_string();
    assert!(
        e.contains("duplicate peer URL http://127.0.0.1:2380: a (guessed from the endpoint http://127.0.0.1:2379 with port 2380), b (")
            && e.contains(" and c (guessed")
            && e.matches("duplicate").count() == 1
            && e.contains("--peer-url NAME=URL"),
        "{e}"
    );

    let rec = recorded(&[
        ("a", "http://127.0.0.1:12380", false),
        ("b", "http://127.0.0.1:22380", false),
        ("gone", "http://127.0.0.1:32380", false),
    ]);
    let flags = vec![
        ("a".to_string(), "http://127.0.0.1:22380".to_string()),
        ("zz".to_string(), "http://127.0.0.1:1".to_string()),
    ];
    let e = plan_members(&m, Some(&rec), "A", &flags, &[])
        .unwrap_err()
        .to_string();
    for want in [
        "duplicate peer URL http://127.0.0.1:22380: a (--peer-url) and b (manifest of archive A)",
        "--peer-url zz=http://127.0.0.1:1: zz is not a member",
        "member c (http://127.0.0.1:2379) of [cluster].members is not in the membership recorded in archive A",
        "member gone (peer http://127.0.0.1:32380, client http://127.0.0.1:32379) recorded in archive A is not in the config",
        "--drop-member gone",
    ] {
        assert!(e.contains(want), "{want:?} missing from {e}");
    }
    // Dropped on purpose, and c given explicitly: accepted.
    let flags = vec![("c".to_string(), "http://127.0.0.1:42380".to_string())];
    let p = plan_members(&m, Some(&rec), "A", &flags, &["gone".to_string()]).unwrap();
    assert_eq!(p.members.len(), 3);
    assert!(parse_peer_flag("a=http://h:1/").is_ok_and(|(n, u)| n == "a" && u == "http://h:1"));
    assert!(parse_peer_flag("a").is_err());
    assert!(parse_peer_flag("a=h:2380").is_err());
}
