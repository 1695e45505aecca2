//! Which data files of a version a read needs. Every views file is one (recipe, replica) part and
//! every logits or embeddings file one teacher's labels of such a part, as the manifest records, so
//! a condition on `recipe`, `replica` or `teacher` decides whole files before any is opened:
//! partition pruning. A [`PartFilter`] never changes an answer, only how many files are read; the
//! query that made it still applies its full condition.

use std::collections::{BTreeSet, HashMap};

use super::columns as c;
use super::{DataFile, Manifest};

/// The recipes, replicas and teachers a read may need; `None` places no constraint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartFilter {
    pub recipes: Option<BTreeSet<String>>,
    pub replicas: Option<BTreeSet<u32>>,
    pub teachers: Option<BTreeSet<String>>,
}

impl PartFilter {
    /// Whether the filter constrains anything.
    pub fn is_everything(&self) -> bool {
        self.recipes.is_none() && self.replicas.is_none() && self.teachers.is_none()
    }

    /// Whether a file of `manifest` may hold rows the filter lets through. A file whose part is
    /// unknown (no recipe recorded, a views key not in the manifest) is always kept.
    pub fn keeps(&self, views_by_key: &HashMap<&str, &DataFile>, file: &DataFile) -> bool {
        let allows = |set: &Option<BTreeSet<String>>, value: Option<&str>| match (set, value) {
            (Some(set), Some(value)) => set.contains(value),
            _ => true,
        };
        let part = match file.table.as_str() {
            c::VIEWS => Some(file),
            c::LOGITS | c::EMBEDDINGS => file.views_key.as_deref().and_then(|key| views_by_key.get(key).copied()),
            _ => None,
        };
        let replica_allowed = match (&self.replicas, part.and_then(|p| p.replica)) {
            (Some(set), Some(replica)) => set.contains(&replica),
            _ => true,
        };
        allows(&self.recipes, part.and_then(|p| p.recipe.as_deref()))
            && replica_allowed
            && (file.table == c::VIEWS || allows(&self.teachers, file.teacher.as_deref()))
    }
}

/// The views files of a manifest by their content key.
pub fn views_by_key(manifest: &Manifest) -> HashMap<&str, &DataFile> {
    manifest.files_of(c::VIEWS).map(|f| (f.key.as_str(), f)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(
        table: &str,
        key: &str,
        recipe: Option<&str>,
        replica: Option<u32>,
        teacher: Option<&str>,
        views_key: Option<&str>,
    ) -> DataFile {
        DataFile {
            table: table.into(),
            path: format!("{table}/{key}.parquet"),
            key: key.into(),
            rows: 1,
            bytes: 1,
            sha256: String::new(),
            xxh3: None,
            recipe: recipe.map(Into::into),
            replica,
            teacher: teacher.map(Into::into),
            views_key: views_key.map(Into::into),
        }
    }

    #[test]
    fn recipes_replicas_and_teachers_decide_whole_files() {
        let manifest = Manifest {
            files: vec![
                file(c::VIEWS, "v1", Some("jitter"), Some(0), None, None),
                file(c::VIEWS, "v2", Some("mixup"), Some(1), None, None),
                file(c::LOGITS, "l1", None, None, Some("big"), Some("v1")),
                file(c::LOGITS, "l2", None, None, Some("small"), Some("v2")),
                file(c::LOGITS, "l3", None, None, Some("big"), Some("missing")),
            ],
            ..Default::default()
        };
        let by_key = views_by_key(&manifest);
        let kept = |filter: &PartFilter| -> Vec<&str> {
            manifest.files.iter().filter(|f| filter.keeps(&by_key, f)).map(|f| f.key.as_str()).collect()
        };
        assert_eq!(kept(&PartFilter::default()), ["v1", "v2", "l1", "l2", "l3"]);
        let mixup = PartFilter { recipes: Some(["mixup".to_string()].into()), ..Default::default() };
        assert_eq!(kept(&mixup), ["v2", "l2", "l3"], "a logits file of an unknown part is kept");
        let big = PartFilter { teachers: Some(["big".to_string()].into()), ..Default::default() };
        assert_eq!(kept(&big), ["v1", "v2", "l1", "l3"], "teachers never prune views");
        let replica = PartFilter { replicas: Some([0].into()), ..Default::default() };
        assert_eq!(kept(&replica), ["v1", "l1", "l3"]);
    }
}
