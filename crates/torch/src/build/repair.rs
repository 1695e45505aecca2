//! `kdstore build PIPELINE --repair`: parts are keyed by content, so a damaged or missing part can
//! be computed again from the pipeline. Repair checks every file of the newest readable version in
//! full (a damaged newest manifest is passed over), takes the damaged ones — data files, and
//! teachers whose model file changed — out of that version so that the build computes exactly
//! those again, and commits once, at the end, a version whose files are in the repaired version's
//! order: when the recomputed bytes are the recorded ones, its content equals the undamaged store's.
//! Until that commit the store's current version is the damaged one, so a repair that is killed
//! leaves nothing worse behind and can simply be run again.

use std::path::Path;

use kdstore_core::pipeline::BuildError;
use kdstore_core::store::integrity::check_file;
use kdstore_core::store::manifest;
use kdstore_core::store::{Manifest, StoreError, TeacherInfo};
use kdstore_core::verify::check_model;

/// What repair took out of the version, to put back in order afterwards.
pub(super) struct Repair {
    /// The repaired version's file keys, in its order.
    order: Vec<String>,
    /// Teachers whose model file was damaged, as the manifest recorded them.
    teachers: Vec<TeacherInfo>,
    /// One line per damaged file, for the report.
    pub found: Vec<String>,
}

/// The version a repair starts from — the newest one whose manifest can be read, or none — with
/// what it found wrong: the damaged files and teachers are taken out of that version, so that the
/// build computes exactly those again.
pub(super) fn start(root: &Path) -> Result<(Option<Manifest>, Repair), BuildError> {
    let (current, passed_over) = match manifest::read_latest(root) {
        Ok(current) => (current, None),
        Err(error @ StoreError::DamagedManifest { readable, .. }) => {
            let current = readable.map(|version| manifest::read(root, version)).transpose()?;
            (current, Some(error.to_string()))
        }
        Err(other) => return Err(other.into()),
    };
    let mut repair = Repair { order: Vec::new(), teachers: Vec::new(), found: passed_over.into_iter().collect() };
    let mut current = current;
    if let Some(manifest) = current.as_mut() {
        take_out_damaged(root, manifest, &mut repair)?;
    }
    Ok((current, repair))
}

/// Takes the damaged files and teachers out of `manifest`.
fn take_out_damaged(root: &Path, manifest: &mut Manifest, repair: &mut Repair) -> Result<(), BuildError> {
    repair.order = manifest.files.iter().map(|f| f.key.clone()).collect();
    let found = &mut repair.found;
    let mut kept = Vec::with_capacity(manifest.files.len());
    for file in std::mem::take(&mut manifest.files) {
        match check_file(root, &file) {
            Ok(()) => kept.push(file),
            Err(error @ StoreError::Damaged { .. }) => found.push(error.to_string()),
            Err(other) => return Err(other.into()),
        }
    }
    manifest.files = kept;
    let teachers = &mut repair.teachers;
    manifest.teachers.retain(|teacher| {
        if teacher.kind != "builtin" {
            return true;
        }
        match check_model(&teacher.name, &teacher.model_file(root), &teacher.model_sha256) {
            Ok(()) => true,
            Err(error) => {
                found.push(error.to_string());
                teachers.push(teacher.clone());
                // The build trains a teacher whose weights file is missing: it is, now.
                let _ = std::fs::remove_file(teacher.model_file(root));
                false
            }
        }
    });
    Ok(())
}

impl Repair {
    /// Whether the repair has a version to commit: it found something wrong.
    pub fn needs_commit(&self) -> bool {
        !self.found.is_empty()
    }

    /// A teacher trained again: its old record when the weights came out as recorded (accuracy
    /// included), else the new record; `true` with it when the weights differ from the damaged
    /// ones', and then its labels must be computed again as well.
    pub fn teacher_again(&self, info: TeacherInfo) -> (TeacherInfo, bool) {
        match self.teachers.iter().find(|t| t.name == info.name) {
            Some(old) if old.model_sha256 == info.model_sha256 => (old.clone(), false),
            Some(_) => (info, true),
            None => (info, false),
        }
    }

    /// Puts the files back in the repaired version's order (new ones last, as they came).
    pub fn restore_order(&self, manifest: &mut Manifest) {
        let position = |key: &str| self.order.iter().position(|k| k == key).unwrap_or(usize::MAX);
        manifest.files.sort_by_key(|f| position(&f.key));
    }
}
