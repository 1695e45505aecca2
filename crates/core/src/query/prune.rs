//! Partition pruning for SQL: a SELECT over one store table whose WHERE requires `recipe`,
//! `replica` or `teacher` to take given values reads only the files of those parts. Each such
//! table reference is renamed to a table of its own (`__kdstore_part_N`, aliased back to the name
//! the query uses) that [`super::run`] registers over the kept files; every other reference reads
//! the whole table. The WHERE clause itself is left as it is, so the answer never changes.
//!
//! Only conditions that are certain are used: top-level `AND` terms of the form `column = literal`,
//! `literal = column` or `column IN (literals)`, with the column unqualified or qualified by the
//! table's name or alias, in a SELECT whose FROM is that one table (no joins).

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Ident, ObjectName, Select, Statement, TableAlias, TableFactor, Value, Visit, VisitMut,
    Visitor, VisitorMut,
};

use crate::store::columns as c;
use crate::store::PartFilter;

/// The tables `kdstore query` knows.
pub const TABLES: [&str; 6] = [c::SAMPLES, c::VIEWS, c::LOGITS, c::EMBEDDINGS, c::SUBSETS, c::LABELS];

/// A table reference that reads only some parts: registered as `name` over `table`'s files that
/// `filter` keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct PrunedTable {
    pub name: String,
    pub table: &'static str,
    pub filter: PartFilter,
}

/// Renames every prunable table reference of `statements` and returns what to register for them.
pub fn prune(statements: &mut Vec<Statement>) -> Vec<PrunedTable> {
    let mut ctes = CteNames::default();
    let _ = Visit::visit(statements, &mut ctes);
    let mut pruner = Pruner { shadowed: ctes.0, pruned: Vec::new() };
    let _ = VisitMut::visit(statements, &mut pruner);
    pruner.pruned
}

/// The store tables that `statements` read (by name, in any SELECT).
pub fn referenced_tables(statements: &[Statement]) -> BTreeSet<&'static str> {
    let mut relations = Relations::default();
    for statement in statements {
        let _ = Visit::visit(statement, &mut relations);
    }
    relations.0
}

#[derive(Default)]
struct Relations(BTreeSet<&'static str>);

impl Visitor for Relations {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if let Some(table) = store_table(relation) {
            self.0.insert(table);
        }
        ControlFlow::Continue(())
    }
}

#[derive(Default)]
struct CteNames(BTreeSet<String>);

impl Visitor for CteNames {
    type Break = ();

    fn pre_visit_query(&mut self, query: &sqlparser::ast::Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            self.0.extend(with.cte_tables.iter().map(|cte| cte.alias.name.value.clone()));
        }
        ControlFlow::Continue(())
    }
}

fn store_table(name: &ObjectName) -> Option<&'static str> {
    let [part] = name.0.as_slice() else { return None };
    let ident = part.as_ident()?;
    TABLES.into_iter().find(|table| *table == ident.value)
}

struct Pruner {
    shadowed: BTreeSet<String>,
    pruned: Vec<PrunedTable>,
}

impl VisitorMut for Pruner {
    type Break = ();

    fn post_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        let [from] = select.from.as_mut_slice() else { return ControlFlow::Continue(()) };
        if !from.joins.is_empty() {
            return ControlFlow::Continue(());
        }
        let TableFactor::Table { name, alias, args: None, .. } = &mut from.relation else {
            return ControlFlow::Continue(());
        };
        let Some(table) = store_table(name).filter(|t| !self.shadowed.contains(*t)) else {
            return ControlFlow::Continue(());
        };
        let qualifier = alias.as_ref().map_or(table.to_string(), |a| a.name.value.clone());
        let filter =
            select.selection.as_ref().map(|condition| part_filter(condition, table, &qualifier)).unwrap_or_default();
        if filter.is_everything() {
            return ControlFlow::Continue(());
        }
        let registered = format!("__kdstore_part_{}", self.pruned.len() + 1);
        *name = ObjectName::from(vec![Ident::new(registered.clone())]);
        if alias.is_none() {
            *alias = Some(TableAlias { explicit: true, name: Ident::new(table), columns: vec![], at: None });
        }
        self.pruned.push(PrunedTable { name: registered, table, filter });
        ControlFlow::Continue(())
    }
}

/// The parts a condition certainly restricts `table` (referred to as `qualifier`) to.
fn part_filter(condition: &Expr, table: &str, qualifier: &str) -> PartFilter {
    let mut terms = Vec::new();
    conjuncts(condition, &mut terms);
    let mut filter = PartFilter::default();
    for term in terms {
        let Some((column, values)) = allowed_values(term, qualifier) else { continue };
        let has = |column: &str| match table {
            c::VIEWS => column != c::TEACHER,
            c::LABELS => true,
            c::LOGITS | c::EMBEDDINGS => column == c::TEACHER,
            _ => false,
        };
        if !has(column) {
            continue;
        }
        match column {
            c::RECIPE => intersect(&mut filter.recipes, strings(&values)),
            c::TEACHER => intersect(&mut filter.teachers, strings(&values)),
            c::REPLICA => intersect(&mut filter.replicas, replicas(&values)),
            _ => {}
        }
    }
    filter
}

fn conjuncts<'e>(expr: &'e Expr, terms: &mut Vec<&'e Expr>) {
    match expr {
        Expr::Nested(inner) => conjuncts(inner, terms),
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            conjuncts(left, terms);
            conjuncts(right, terms);
        }
        other => terms.push(other),
    }
}

/// `(column, literals)` for `column = literal`, `literal = column` and `column IN (literals)`.
fn allowed_values<'e>(term: &'e Expr, qualifier: &str) -> Option<(&'static str, Vec<&'e Value>)> {
    match term {
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
            match (column(left, qualifier), column(right, qualifier)) {
                (Some(name), None) => Some((name, vec![literal(right)?])),
                (None, Some(name)) => Some((name, vec![literal(left)?])),
                _ => None,
            }
        }
        Expr::InList { expr, list, negated: false } => {
            let name = column(expr, qualifier)?;
            Some((name, list.iter().map(literal).collect::<Option<Vec<_>>>()?))
        }
        _ => None,
    }
}

/// The partition column an expression names, if it is one.
fn column(expr: &Expr, qualifier: &str) -> Option<&'static str> {
    let name = match expr {
        Expr::Identifier(ident) => &ident.value,
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [table, column] if table.value == qualifier => &column.value,
            _ => return None,
        },
        Expr::Nested(inner) => return column(inner, qualifier),
        _ => return None,
    };
    [c::RECIPE, c::REPLICA, c::TEACHER].into_iter().find(|column| column == name)
}

fn literal(expr: &Expr) -> Option<&Value> {
    match expr {
        Expr::Value(value) => Some(&value.value),
        Expr::Nested(inner) => literal(inner),
        _ => None,
    }
}

fn strings(values: &[&Value]) -> BTreeSet<String> {
    values
        .iter()
        .filter_map(|value| match value {
            Value::SingleQuotedString(text) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn replicas(values: &[&Value]) -> BTreeSet<u32> {
    values
        .iter()
        .filter_map(|value| match value {
            Value::Number(text, _) => text.parse().ok(),
            _ => None,
        })
        .collect()
}

fn intersect<T: Ord + Clone>(current: &mut Option<BTreeSet<T>>, values: BTreeSet<T>) {
    *current = Some(match current.take() {
        Some(existing) => existing.intersection(&values).cloned().collect(),
        None => values,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn pruned(sql: &str) -> (String, Vec<PrunedTable>) {
        let mut statements = Parser::parse_sql(&GenericDialect, sql).unwrap();
        let pruned = prune(&mut statements);
        (statements[0].to_string(), pruned)
    }

    fn set(items: &[&str]) -> Option<BTreeSet<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn recipe_and_teacher_conditions_pick_parts() {
        let (sql, tables) = pruned(
            "SELECT COUNT(*) FROM labels WHERE teacher = 'big' AND (recipe IN ('jitter', 'mixup') AND entropy < 1)",
        );
        assert_eq!(sql, "SELECT COUNT(*) FROM __kdstore_part_1 AS labels WHERE teacher = 'big' AND (recipe IN ('jitter', 'mixup') AND entropy < 1)");
        assert_eq!(
            tables,
            [PrunedTable {
                name: "__kdstore_part_1".into(),
                table: c::LABELS,
                filter: PartFilter { recipes: set(&["jitter", "mixup"]), teachers: set(&["big"]), replicas: None },
            }]
        );
    }

    #[test]
    fn qualified_columns_replicas_and_repeated_conditions_intersect() {
        let (sql, tables) =
            pruned("SELECT * FROM views v WHERE v.replica IN (0, 1) AND 1 = replica AND v.recipe = 'a'");
        assert!(sql.starts_with("SELECT * FROM __kdstore_part_1 v WHERE"), "{sql}");
        assert_eq!(tables[0].filter.replicas, Some([1].into()));
        assert_eq!(tables[0].filter.recipes, set(&["a"]));
    }

    #[test]
    fn uncertain_conditions_joins_and_ctes_read_everything() {
        for sql in [
            "SELECT * FROM labels WHERE recipe = 'a' OR entropy > 1",
            "SELECT * FROM labels WHERE NOT recipe = 'a'",
            "SELECT * FROM views v JOIN samples s ON v.sample_id = s.sample_id WHERE recipe = 'a'",
            "SELECT * FROM views WHERE other.recipe = 'a'",
            "SELECT * FROM logits WHERE recipe = 'a'",
            "WITH views AS (SELECT * FROM samples) SELECT * FROM views WHERE recipe = 'a'",
        ] {
            let (rewritten, tables) = pruned(sql);
            assert!(tables.is_empty(), "{sql}");
            assert_eq!(rewritten, sql);
        }
    }

    #[test]
    fn the_tables_a_query_reads_are_found_in_subqueries_too() {
        let statements = Parser::parse_sql(
            &GenericDialect,
            "SELECT * FROM views WHERE sample_id IN (SELECT sample_id FROM samples)",
        )
        .unwrap();
        assert_eq!(referenced_tables(&statements), [c::SAMPLES, c::VIEWS].into());
    }
}
