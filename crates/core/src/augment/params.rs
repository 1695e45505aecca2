//! The parameters an op drew for a view, as typed values under fixed column names, so that the
//! `views` table can hold them as ordinary columns that Polars SQL, DuckDB and pandas filter
//! directly (`WHERE horizontal_flip AND random_crop_left > 4`). Every op owns a flag column named
//! after it (true when applied, false when its `p` draw skipped it, null when its recipe has no
//! such op) and a few columns prefixed with its name. The set of columns is the same for every
//! views file, whatever its recipe, so files union without schema juggling.

use std::collections::BTreeMap;

/// Element type of a parameter column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Bool,
    Int,
    Float,
    IntList,
    FloatList,
}

impl ParamKind {
    /// The type's name as the store's schema documents it.
    pub fn type_name(self) -> &'static str {
        match self {
            ParamKind::Bool => "bool",
            ParamKind::Int => "int64",
            ParamKind::Float => "float64",
            ParamKind::IntList => "list<int64>",
            ParamKind::FloatList => "list<float64>",
        }
    }
}

/// One parameter column: its name (prefixed with the op's name), type and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamColumn {
    pub name: &'static str,
    pub kind: ParamKind,
    pub description: &'static str,
}

pub(crate) const fn param(name: &'static str, kind: ParamKind, description: &'static str) -> ParamColumn {
    ParamColumn { name, kind, description }
}

/// A drawn value. Floats are kept as f64, which holds every f32 an op draws exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    IntList(Vec<i64>),
    FloatList(Vec<f64>),
}

impl ParamValue {
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ParamValue::Bool(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            ParamValue::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_float(&self) -> Option<f64> {
        match self {
            ParamValue::Float(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_ints(&self) -> Option<&[i64]> {
        match self {
            ParamValue::IntList(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_floats(&self) -> Option<&[f64]> {
        match self {
            ParamValue::FloatList(v) => Some(v),
            _ => None,
        }
    }
}

/// What one op drew, as (column, value) pairs; the op's flag column is added by the renderer.
pub type Drawn = Vec<(&'static str, ParamValue)>;

/// The value an op drew under `column`.
pub fn find<'a>(drawn: &'a Drawn, column: &str) -> Option<&'a ParamValue> {
    drawn.iter().find(|(name, _)| *name == column).map(|(_, value)| value)
}

/// Every parameter column of a view, by name; columns the view's recipe does not touch are absent
/// (null in the table).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DrawnParams(pub BTreeMap<&'static str, ParamValue>);

impl DrawnParams {
    pub fn get(&self, column: &str) -> Option<&ParamValue> {
        self.0.get(column)
    }

    pub(crate) fn insert(&mut self, column: &'static str, value: ParamValue) {
        self.0.insert(column, value);
    }
}

/// Shorthands for ops building their `Drawn` lists.
pub(crate) fn int(value: usize) -> ParamValue {
    ParamValue::Int(value as i64)
}
pub(crate) fn floats<T: Copy + Into<f64>>(values: &[T]) -> ParamValue {
    ParamValue::FloatList(values.iter().map(|&v| v.into()).collect())
}
pub(crate) fn ints(values: &[usize]) -> ParamValue {
    ParamValue::IntList(values.iter().map(|&v| v as i64).collect())
}
