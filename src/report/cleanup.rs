//! The `cleanup` job summary: what went (or would go), and why the rest stayed.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::packages::plan::{Fate, Goes, Judged, Stays};
use crate::report::{bytes, code, prose};
use crate::retention::{Kept, Plan};
use crate::validate::Broken;

/// Rows listed per repository before the rest is counted.
const MAX_ROWS: usize = 100;

pub struct Cleaned {
    pub repository: String,
    pub plan: Plan,
    /// Estimated bytes the registry frees once it collects garbage.
    pub freed: u64,
    /// Push time per tag, for the ages shown.
    pub pushed: HashMap<String, Option<i64>>,
    /// Through GitHub's Packages API: every package version, going first.
    pub versions: Vec<Judged>,
    /// `validate`: what the kept tags' trees lack; `None` when not read back.
    pub broken: Option<Vec<Broken>>,
}

pub fn summary(cleaned: &[Cleaned], dry_run: bool, now: i64) -> String {
    let mut md = String::from("### registry-action cleanup\n\n");
    if dry_run {
        md.push_str("**Dry run: nothing was deleted.** The tags below would be.\n\n");
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    let _ = writeln!(
        md,
        "| repository | tags {verb} | manifests | tags kept | frees (estimate) |\n|---|---|---|---|---|"
    );
    for c in cleaned {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            code(&c.repository),
            c.plan.deleted_tags().count(),
            c.plan.delete.len(),
            c.plan.kept.len(),
            bytes(c.freed)
        );
    }
    for c in cleaned {
        repository_details(&mut md, c, verb, now);
    }
    md.push_str(
        "\nFreed bytes count blobs no remaining tag uses; the registry returns them at its next garbage collection.\n",
    );
    md
}

fn repository_details(md: &mut String, c: &Cleaned, verb: &str, now: i64) {
    let _ = writeln!(md, "\n#### {}\n", code(&c.repository));
    if !c.plan.delete.is_empty() {
        let _ = writeln!(
            md,
            "<details><summary>{} tags {verb}</summary>\n\n| tag | age | digest |\n|---|---|---|",
            c.plan.deleted_tags().count()
        );
        let rows: Vec<(&str, &str)> = c
            .plan
            .delete
            .iter()
            .flat_map(|d| d.tags.iter().map(|t| (t.as_str(), d.digest.as_str())))
            .collect();
        for (tag, digest) in rows.iter().take(MAX_ROWS) {
            let age = c.pushed.get(*tag).copied().flatten();
            let _ = writeln!(
                md,
                "| {} | {} | `{}` |",
                code(tag),
                age_text(age, now),
                short(digest)
            );
        }
        if rows.len() > MAX_ROWS {
            let _ = writeln!(md, "| … and {} more | | |", rows.len() - MAX_ROWS);
        }
        md.push_str("\n</details>\n\n");
    }
    versions(md, &c.versions, verb);
    let mut reasons: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (tag, kept) in &c.plan.kept {
        reasons.entry(reason(kept)).or_default().push(tag);
    }
    for (reason, tags) in reasons {
        let shown: Vec<String> = tags.iter().take(10).map(|t| code(t)).collect();
        let more = if tags.len() > 10 {
            format!(" and {} more", tags.len() - 10)
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "- kept, {} ({}): {}{more}",
            prose(&reason),
            tags.len(),
            shown.join(", ")
        );
    }
    match &c.broken {
        Some(broken) if broken.is_empty() => {
            let _ = writeln!(
                md,
                "\nRead back: every kept tag's manifests and blobs are there."
            );
        }
        Some(broken) => {
            let _ = writeln!(md, "\n**Read back: {} pieces missing.**\n", broken.len());
            for b in broken.iter().take(MAX_ROWS) {
                let _ = writeln!(md, "- {} lacks {}", code(&b.tag), prose(&b.missing));
            }
        }
        None => {}
    }
}

/// Every package version, with why it goes or stays.
fn versions(md: &mut String, judged: &[Judged], verb: &str) {
    if judged.is_empty() {
        return;
    }
    let going = judged
        .iter()
        .filter(|j| matches!(j.fate, Fate::Goes(_)))
        .count();
    let _ = writeln!(
        md,
        "<details><summary>{} package versions: {going} {verb}, {} kept</summary>\n\n| version | digest | tags | |\n|---|---|---|---|",
        judged.len(),
        judged.len() - going
    );
    for j in judged.iter().take(MAX_ROWS) {
        let tags: Vec<String> = j.version.tags.iter().map(|t| code(t)).collect();
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {} |",
            j.version.id,
            short(&j.version.digest),
            tags.join(" "),
            prose(&fate(&j.fate, verb))
        );
    }
    if judged.len() > MAX_ROWS {
        let _ = writeln!(md, "| … and {} more | | | |", judged.len() - MAX_ROWS);
    }
    md.push_str("\n</details>\n\n");
}

fn fate(fate: &Fate, verb: &str) -> String {
    match fate {
        Fate::Goes(Goes::Tags) => format!("{verb}: its tags go"),
        Fate::Goes(Goes::ChildOf(index)) => format!("{verb} with the index {}", short(index)),
        Fate::Goes(Goes::ReferrerOf(subject)) => {
            format!("{verb} with {}, which it is about", short(subject))
        }
        Fate::Goes(Goes::Untagged) => {
            format!("{verb}: untagged, unreferenced (`untagged: delete`)")
        }
        Fate::Stays(Stays::Tagged) => "kept: a kept tag names it".into(),
        Fate::Stays(Stays::ChildOfKept(root)) => format!("kept: part of the kept `{root}`"),
        Fate::Stays(Stays::ReferrerOfKept(subject)) => {
            format!("kept: about the kept {}", short(subject))
        }
        Fate::Stays(Stays::Untagged) => "kept: untagged (`untagged: keep`)".into(),
        Fate::Stays(Stays::New) => "kept: pushed while cleanup ran".into(),
    }
}

fn reason(kept: &Kept) -> String {
    match kept {
        Kept::Newest => "among the newest `keep`".into(),
        Kept::Protected(why) => format!("protected: {why}"),
        Kept::NotPrunable => "not matched by `tag-pattern`".into(),
        Kept::TooRecent => "younger than `older-than`".into(),
        Kept::UnknownAge => "no trustworthy push time".into(),
        Kept::SharesDigest { with } => {
            format!("same manifest as kept `{with}` (deleting it would delete both)")
        }
        Kept::ChildOfKept { index_tag } => format!("part of the kept multi-arch `{index_tag}`"),
        Kept::Attached { to } => format!("signature or attestation of the kept `{to}`"),
        Kept::Orphan { to } => format!(
            "an orphan: its subject `{to}` is gone from the registry (`orphans: delete` removes it)"
        ),
    }
}

fn age_text(pushed: Option<i64>, now: i64) -> String {
    match pushed {
        Some(t) if now >= t => match now - t {
            s if s >= 86_400 => format!("{} d", s / 86_400),
            s if s >= 3600 => format!("{} h", s / 3600),
            s => format!("{} min", s / 60),
        },
        _ => "unknown".into(),
    }
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::retention::Deletion;

    #[test]
    fn says_what_went_and_why_the_rest_stayed() {
        let plan = Plan {
            delete: vec![Deletion {
                digest: format!("sha256:{}", "a".repeat(64)),
                tags: vec!["old|sha".into()],
                of: Vec::new(),
            }],
            kept: vec![
                ("latest".into(), Kept::Protected("`latest`".into())),
                ("new".into(), Kept::Newest),
                (
                    "twin".into(),
                    Kept::SharesDigest {
                        with: "latest".into(),
                    },
                ),
            ],
        };
        let cleaned = [Cleaned {
            repository: "acme/app".into(),
            plan,
            freed: 3 << 20,
            pushed: HashMap::from([("old|sha".to_string(), Some(1000))]),
            versions: Vec::new(),
            broken: None,
        }];
        let md = summary(&cleaned, true, 1000 + 3 * 86_400);
        assert!(md.contains("Dry run: nothing was deleted"), "{md}");
        assert!(md.contains("| `acme/app` | 1 | 1 | 3 | 3.0 MiB |"), "{md}");
        assert!(
            md.contains("| <code>old\\|sha</code> | 3 d | `sha256:aaaaaaaaaaaa` |"),
            "{md}"
        );
        assert!(
            md.contains("- kept, protected: `latest` (1): `latest`"),
            "{md}"
        );
        assert!(
            md.contains(
                "- kept, same manifest as kept `latest` (deleting it would delete both) (1): `twin`"
            ),
            "{md}"
        );
        let real = summary(&cleaned, false, 0);
        assert!(
            !real.contains("Dry run") && real.contains("tags deleted"),
            "{real}"
        );
        assert!(
            real.contains("| <code>old\\|sha</code> | unknown |"),
            "{real}"
        );
    }
}
