#![allow(clippy::unwrap_used)]
use super::*;
use crate::Status;
use vigil_alert::Severity;
use vigil_core::config::EtcdHealth;

fn member(n: &str, port: u16) -> MemberConfig {
    MemberConfig {
        name: n.into(),
        endpoint: format!("http://127.0.0.1:{port}"),
        peer_url: None,
    }
}

fn status(id: u64, leader: u64, index: u64) -> MemberStatus {
    MemberStatus {
        cluster_id: 1,
        member_id: id,
        revision: 10,
        raft_term: 2,
        raft_index: index,
        raft_applied_index: index,
        version: "3.4.23".into(),
        db_size: 100 << 20,
        db_size_in_use: 90 << 20,
        leader,
        is_learner: false,
        errors: vec![],
        db_size_quota: 0,
    }
}

fn listed(id: u64, n: &str, port: u16) -> ListedMember {
    ListedMember {
        id,
        name: n.into(),
        peer_urls: vec![],
        client_urls: vec![format!("http://127.0.0.1:{port}")],
        is_learner: false,
    }
}

fn ok_probe(s: MemberStatus, list: Vec<ListedMember>, alarms: Vec<Alarm>) -> Probe {
    Probe {
        status: Some(Ok(s)),
        quorum_read: Some(Ok(())),
        alarms: Some(alarms),
        members: Some(list),
        took: Duration::from_millis(3),
    }
}

fn find<'a>(f: &'a [Finding], check: &str, subject: &str) -> &'a Finding {
    f.iter()
        .find(|x| x.check == check && x.subject == subject)
        .unwrap_or_else(|| panic!("{check} {subject} in {f:#?}"))
}

fn three() -> (Vec<MemberConfig>, Vec<ListedMember>) {
    (
        vec![member("a", 1), member("b", 2), member("c", 3)],
        vec![listed(11, "a", 1), listed(12, "b", 2), listed(13, "c", 3)],
    )
}

#[test]
fn healthy_cluster_passes() {
    let (m, l) = three();
    let p: Vec<Probe> = (0..3)
        .map(|i| ok_probe(status(11 + i, 12, 100 + i), l.clone(), vec![]))
        .collect();
    let f = evaluate(&m, &p, &EtcdHealth::default());
    assert!(f.iter().all(|x| x.status == Status::Pass), "{f:#?}");
    assert!(find(&f, "etcd.leader", "a").reason.contains("leader b"));
    assert!(
        find(&f, "etcd.db_size", "a").reason.contains("config")
            || find(&f, "etcd.db_size", "a").reason.contains("db_quota")
    );
}

fn refused(member: &str) -> ProbeError {
    EtcdError::Rpc {
        member: member.into(),
        endpoint: "http://x:2379".into(),
        op: "connect",
        message: "connection refused".into(),
    }
    .into()
}

#[test]
fn down_member_fails_and_covers_its_details() {
    let (m, l) = three();
    let mut p: Vec<Probe> = (0..3)
        .map(|i| ok_probe(status(11 + i, 12, 100), l.clone(), vec![]))
        .collect();
    p[2] = Probe {
        status: Some(Err(refused("c"))),
        ..Default::default()
    };
    let f = evaluate(&m, &p, &EtcdHealth::default());
    let r = find(&f, REACHABLE, "c");
    assert_eq!(r.status, Status::Fail);
    assert_eq!(r.alert.to_string(), r#"etcd_member_down{member="c"}"#);
    let d = find(&f, "etcd.db_size", "c");
    assert_eq!(d.status, Status::Unknown);
    assert_eq!(d.covered_by.as_deref(), Some(REACHABLE));
    assert_eq!(
        find(&f, "etcd.leader_agreement", "cluster").status,
        Status::Pass
    );
    assert_eq!(find(&f, "etcd.member_list", "cluster").status, Status::Pass);
}

#[test]
fn leader_problems_lag_size_frag_alarms_learners() {
    let (m, l) = three();
    let mut s0 = status(11, 12, 5000);
    s0.db_size = 1900 << 20; // 92.8% of 2 GiB
    s0.db_size_in_use = 400 << 20;
    let mut s1 = status(12, 13, 5000);
    s1.db_size_quota = 8 << 30;
    let mut s2 = status(13, 0, 100);
    s2.is_learner = true;
    let alarms = vec![Alarm {
        member_id: 11,
        alarm: "NOSPACE".into(),
    }];
    let p = vec![
        ok_probe(s0, l.clone(), alarms.clone()),
        ok_probe(s1, l.clone(), alarms.clone()),
        ok_probe(s2, l.clone(), alarms),
    ];
    let f = evaluate(&m, &p, &EtcdHealth::default());
    assert_eq!(find(&f, "etcd.leader", "c").status, Status::Fail);
    let agree = find(&f, "etcd.leader_agreement", "cluster");
    assert_eq!(agree.status, Status::Fail);
    assert!(agree.reason.contains("disagree"), "{}", agree.reason);
    let lag = find(&f, "etcd.raft_lag", "c");
    assert_eq!(
        (lag.status, lag.severity),
        (Status::Fail, Severity::Warning)
    );
    let db = find(&f, "etcd.db_size", "a");
    assert_eq!((db.status, db.severity), (Status::Fail, Severity::Critical));
    let db_b = find(&f, "etcd.db_size", "b");
    assert_eq!(db_b.status, Status::Pass);
    assert!(
        db_b.reason.contains("reported by the server"),
        "{}",
        db_b.reason
    );
    let frag = find(&f, "etcd.fragmentation", "a");
    assert_eq!(frag.status, Status::Fail, "{}", frag.reason);
    let al = find(&f, "etcd.alarms", "a");
    assert_eq!(al.status, Status::Fail);
    assert!(al.reason.contains("NOSPACE"));
    assert_eq!(find(&f, "etcd.alarms", "b").status, Status::Pass);
    assert_eq!(find(&f, "etcd.learner", "c").status, Status::Fail);
}

#[test]
fn unexpected_and_missing_members() {
    let (m, mut l) = three();
    l.pop();
    l.push(listed(99, "intruder", 9));
    let p: Vec<Probe> = (0..3)
        .map(|i| ok_probe(status(11 + i, 12, 100), l.clone(), vec![]))
        .collect();
    let f = evaluate(&m, &p, &EtcdHealth::default());
    let ml = find(&f, "etcd.member_list", "cluster");
    assert_eq!(ml.status, Status::Fail);
    assert!(ml.reason.contains("intruder"), "{}", ml.reason);
    // c answers with ID 13, which the list does not have.
    assert!(ml.reason.contains("not in the cluster: c"), "{}", ml.reason);
}

#[test]
fn all_down_is_covered_not_unknown() {
    let (m, _) = three();
    let p: Vec<Probe> = (0..3)
        .map(|_| Probe {
            status: Some(Err(refused("x"))),
            ..Default::default()
        })
        .collect();
    let f = evaluate(&m, &p, &EtcdHealth::default());
    assert!(f
        .iter()
        .all(|x| x.status == Status::Fail || x.covered_by.is_some()));
}
