//! What a run prints: a readable summary, or JSON for scripts.

use crate::run::RunReport;
use std::fmt::Write;
use vigil_core::units::human_bytes;

/// One line on a member's restore proof.
pub fn proof_line(p: &vigil_core::manifest::RestoreProof) -> String {
    use vigil_core::manifest::ProofResult;
    match p.result {
        ProofResult::Proven => format!(
            "restore proven in {:.1}s: revision {}, {} keys, hash_kv {} as the member{}",
            p.duration_ms as f64 / 1000.0,
            p.hash_revision.or(p.revision).unwrap_or_default(),
            p.key_count.unwrap_or_default(),
            p.hash_kv.unwrap_or_default(),
            if p.peers_agree.is_empty() {
                String::new()
            } else {
                format!(" and {}", p.peers_agree.join(", "))
            }
        ),
        ProofResult::Failed => format!(
            "restore proof FAILED at check {}",
            p.check.as_deref().unwrap_or("?")
        ),
        ProofResult::Skipped => {
            format!("restore proof {}", p.error.as_deref().unwrap_or("skipped"))
        }
    }
}

pub fn human(r: &RunReport) -> String {
    let mut s = String::new();
    let ok = r.members.iter().filter(|m| m.ok).count();
    let _ = writeln!(
        s,
        "vigil-snapshot run {} for cluster {}: {ok}/{} members archived in {:.1}s{}",
        r.run_id,
        r.cluster,
        r.members.len(),
        r.duration_ms as f64 / 1000.0,
        if r.encrypted { "" } else { " (UNENCRYPTED)" }
    );
    for m in &r.members {
        match (&m.manifest, &m.error) {
            (Some(man), None) => {
                let _ = writeln!(
                    s,
                    "  {:<10} OK    revision {:<8} keys {:<7} {:>10} -> {:>10} ({:.2}x)  {}",
                    m.member,
                    man.revision,
                    man.key_count,
                    human_bytes(man.snapshot_size),
                    human_bytes(man.archive_size),
                    man.ratio(),
                    m.archive
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                );
            }
            (_, Some(e)) => {
                let _ = writeln!(s, "  {:<10} FAIL  [{}] {e}", m.member, m.stage);
            }
            _ => {}
        }
        if let Some(p) = m.manifest.as_ref().and_then(|x| x.restore_proof.as_ref()) {
            let _ = writeln!(s, "  {:<10}       {}", "", proof_line(p));
        }
        for why in &m.deferred {
            let _ = writeln!(s, "  {:<10}       deferred: {why}", "");
        }
        for p in &m.pruned {
            let _ = writeln!(s, "  {:<10}       pruned {}", "", p.display());
        }
    }
    if let Some(c) = &r.consistency {
        if c.ok {
            let names: Vec<&str> = c
                .members
                .iter()
                .filter(|m| m.hash.is_some())
                .map(|m| m.member.as_str())
                .collect();
            let _ = writeln!(
                s,
                "  consistency: OK, hash_kv at revision {} agrees on {}",
                c.revision,
                names.join(", ")
            );
        } else {
            for (m, why) in &c.diverged {
                let _ = writeln!(s, "  consistency: FAIL {m}: {why}");
            }
        }
        for n in &c.notes {
            let _ = writeln!(s, "  consistency: note: {n}");
        }
    }
    if let Some(t) = &r.rke2_token {
        match &t.error {
            None => {
                let _ = writeln!(
                    s,
                    "  rke2 token: archived encrypted at {}",
                    t.path.display()
                );
            }
            Some(e) => {
                let _ = writeln!(s, "  rke2 token: FAIL {e}");
            }
        }
    }
    for m in &r.members {
        for c in m.sinks.iter().filter(|c| !c.ok) {
            let _ = writeln!(
                s,
                "  {:<10} sink {}: streamed upload failed: {}",
                m.member,
                c.sink,
                c.error.as_deref().unwrap_or("?")
            );
        }
    }
    for k in &r.sinks {
        let _ = writeln!(
            s,
            "  sink {:<10} {}  {} verified copies{}{}",
            k.sink,
            if k.ok { "OK  " } else { "FAIL" },
            k.copies,
            if k.shipped.is_empty() {
                String::new()
            } else {
                format!(", {} shipped late", k.shipped.len())
            },
            if k.pruned.is_empty() {
                String::new()
            } else {
                format!(", {} pruned", k.pruned.len())
            },
        );
        for e in &k.errors {
            let _ = writeln!(s, "    error: {e}");
        }
        for p in k.locked.iter().chain(&k.left) {
            let _ = writeln!(s, "    kept: {p}");
        }
        for w in &k.warnings {
            let _ = writeln!(s, "    repaired: {w}");
        }
    }
    for p in &r.cleaned {
        let _ = writeln!(
            s,
            "  removed leftover of an interrupted run: {}",
            p.display()
        );
    }
    for w in &r.warnings {
        let _ = writeln!(s, "  WARNING: {w}");
    }
    s
}
