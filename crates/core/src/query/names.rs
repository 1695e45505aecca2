//! SQL as users write it for DuckDB, rewritten so that Polars answers it the same way.
//!
//! - Names: Polars names an expression after its first column (`SELECT MIN(teacher_loss),
//!   MAX(teacher_loss)` gives two `teacher_loss` columns and fails), while users expect DuckDB's
//!   names (`min(teacher_loss)`, `max(teacher_loss)`), which scripts written against DuckDB read.
//!   Every unaliased expression of every SELECT list gets DuckDB's name as an explicit alias; plain
//!   columns and wildcards keep their own. The names follow DuckDB 2.0's `ParsedExpression::ToString`
//!   (tests/python/check_sql_parity.py checks them against DuckDB); an expression kind it does not
//!   know is named by its SQL text.
//! - ORDER BY an expression of the SELECT list (`ORDER BY COUNT(*) DESC`) sorts by that output
//!   column, and ORDER BY an aggregate that is not in it sorts by a hidden output column that is
//!   dropped afterwards: Polars would otherwise evaluate the aggregate again outside the groups.
//! - `SUM(<number>)` is the number times `COUNT(*)` (Polars would return the number itself).
//! - A float cast to an integer type rounds to the nearest integer (ties to even), as DuckDB does,
//!   instead of truncating as Polars does: `CAST(2.7 AS INTEGER)` is 3 in both.
//! - A window function over an aggregate (`SUM(COUNT(*)) OVER ()`) is refused: Polars gives a wrong
//!   answer for it instead of an error. So are ROLLUP, CUBE and GROUPING SETS, which Polars
//!   rejects with an unreadable message.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, DuplicateTreatment, ExactNumberInfo, Expr, Function, FunctionArg,
    FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName, ObjectNamePart, OrderByExpr,
    OrderByKind, Query, Select, SelectItem, SetExpr, Statement, Subscript, UnaryOperator, Value, Visit, VisitMut,
    Visitor, VisitorMut, WindowFrame, WindowFrameBound, WindowFrameUnits, WindowType,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// Rewrites the parsed `statements` of `source` as the module describes; `float_columns` are the
/// store's float columns. An error says why a query cannot be answered faithfully.
pub fn rewrite(statements: &mut Vec<Statement>, source: &str, float_columns: &[&str]) -> Result<(), String> {
    if let ControlFlow::Break(problem) = Visit::visit(statements, &mut Refused) {
        return Err(problem);
    }
    let _ = VisitMut::visit(statements, &mut Namer { source });
    let _ = VisitMut::visit(statements, &mut Semantics { float_columns });
    Ok(())
}

struct Namer<'a> {
    source: &'a str,
}

impl VisitorMut for Namer<'_> {
    type Break = ();

    fn post_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        for item in &mut select.projection {
            if let SelectItem::UnnamedExpr(expr) = item {
                if !is_column(expr) {
                    let alias = Ident::with_quote('"', self.name(expr));
                    *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias };
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// `ORDER BY <an expression of the SELECT list>` becomes `ORDER BY <its output column>`; an
    /// aggregate that is not in the list becomes a hidden output column, dropped by an outer query.
    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let (SetExpr::Select(select), Some(order_by)) = (query.body.as_mut(), query.order_by.as_mut()) else {
            return ControlFlow::Continue(());
        };
        let OrderByKind::Expressions(orders) = &mut order_by.kind else { return ControlFlow::Continue(()) };
        let mut hidden = Vec::new();
        for order in orders {
            if is_column(&order.expr) || matches!(order.expr, Expr::Value(_)) {
                continue;
            }
            let output = select.projection.iter().find_map(|item| match item {
                SelectItem::ExprWithAlias { expr, alias } if *expr == order.expr => Some(alias.clone()),
                _ => None,
            });
            if let Some(alias) = output {
                order.expr = Expr::Identifier(alias);
            } else if Visit::visit(&order.expr, &mut FindAggregate).is_break() {
                let alias = Ident::with_quote('"', format!("__kdstore_order_{}", hidden.len() + 1));
                let expr = std::mem::replace(&mut order.expr, Expr::Identifier(alias.clone()));
                select.projection.push(SelectItem::ExprWithAlias { expr, alias: alias.clone() });
                hidden.push(alias.to_string());
            }
        }
        if !hidden.is_empty() {
            let outer = format!("SELECT * EXCLUDE ({}) FROM ({query})", hidden.join(", "));
            if let Ok(parsed) = Parser::new(&GenericDialect).try_with_sql(&outer).and_then(|mut p| p.parse_query()) {
                *query = *parsed;
            }
        }
        ControlFlow::Continue(())
    }
}

/// Finds what is refused: a window function whose arguments hold an aggregate, and grouping sets.
struct Refused;

impl Visitor for Refused {
    type Break = String;

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        if let Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_) = expr {
            return ControlFlow::Break(format!(
                "GROUP BY {expr} is not supported by Polars SQL; UNION ALL one GROUP BY per grouping level instead"
            ));
        }
        let Expr::Function(function) = expr else { return ControlFlow::Continue(()) };
        let (Some(_), FunctionArguments::List(list)) = (&function.over, &function.args) else {
            return ControlFlow::Continue(());
        };
        let mut inner = FindAggregate;
        for arg in &list.args {
            if let FunctionArg::Unnamed(FunctionArgExpr::Expr(arg)) = arg {
                if let ControlFlow::Break(aggregate) = Visit::visit(arg, &mut inner) {
                    return ControlFlow::Break(format!(
                        "{function} applies a window function to the aggregate {aggregate}, which Polars SQL does not answer correctly; compute the aggregate in a subquery first"
                    ));
                }
            }
        }
        ControlFlow::Continue(())
    }
}

struct FindAggregate;

impl Visitor for FindAggregate {
    type Break = String;

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        match expr {
            Expr::Function(function) if function.over.is_none() && is_aggregate(&function.name) => {
                ControlFlow::Break(function.to_string())
            }
            _ => ControlFlow::Continue(()),
        }
    }
}

fn is_aggregate(name: &ObjectName) -> bool {
    const AGGREGATES: &[&str] = &[
        "any_value",
        "array_agg",
        "avg",
        "bool_and",
        "bool_or",
        "count",
        "first",
        "last",
        "max",
        "mean",
        "median",
        "min",
        "stddev",
        "stddev_pop",
        "stddev_samp",
        "string_agg",
        "sum",
        "var_pop",
        "var_samp",
        "variance",
    ];
    let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else { return false };
    AGGREGATES.contains(&ident.value.to_lowercase().as_str())
}

/// Rewrites the expressions whose meaning differs between the engines: the float operand of a
/// cast to an integer type is rounded, and `SUM(<number>)` becomes the number times `COUNT(*)`.
struct Semantics<'a> {
    float_columns: &'a [&'a str],
}

impl VisitorMut for Semantics<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Cast { expr: inner, data_type, .. } if is_integer_type(data_type) && self.is_float(inner) => {
                let operand = std::mem::replace(inner.as_mut(), Expr::Value(Value::Null.into()));
                **inner = call("round", vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(operand))]);
            }
            Expr::Function(function) if function.over.is_none() => {
                if let Some(number) = sum_of_number(function) {
                    let count = call("count", vec![FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]);
                    *expr = Expr::Nested(Box::new(Expr::BinaryOp {
                        left: Box::new(number),
                        op: BinaryOperator::Multiply,
                        right: Box::new(count),
                    }));
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// The number `n` of a `SUM(n)`.
fn sum_of_number(function: &Function) -> Option<Expr> {
    let [ObjectNamePart::Identifier(name)] = function.name.0.as_slice() else { return None };
    let FunctionArguments::List(list) = &function.args else { return None };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(number @ Expr::Value(value)))]
            if name.value.eq_ignore_ascii_case("sum")
                && list.duplicate_treatment.is_none()
                && function.filter.is_none()
                && matches!(value.value, Value::Number(..)) =>
        {
            Some(number.clone())
        }
        _ => None,
    }
}

fn call(name: &str, args: Vec<FunctionArg>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList { duplicate_treatment: None, args, clauses: vec![] }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn is_integer_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int(_)
            | DataType::Integer(_)
            | DataType::BigInt(_)
            | DataType::SmallInt(_)
            | DataType::TinyInt(_)
            | DataType::Int2(_)
            | DataType::Int4(_)
            | DataType::Int8(_)
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::HugeInt
            | DataType::UBigInt
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::UTinyInt
            | DataType::USmallInt
    )
}

impl Semantics<'_> {
    /// Whether an expression is certainly a float: a float column, a decimal literal, a division,
    /// arithmetic with a float operand, or a function that gives floats.
    fn is_float(&self, expr: &Expr) -> bool {
        const FLOAT_FUNCTIONS: &[&str] = &[
            "avg",
            "mean",
            "median",
            "stddev",
            "stddev_pop",
            "stddev_samp",
            "variance",
            "var_pop",
            "var_samp",
            "sqrt",
            "exp",
            "ln",
            "log",
            "log10",
            "log2",
            "power",
            "pow",
            "random",
        ];
        match expr {
            Expr::Identifier(ident) => self.float_columns.contains(&ident.value.as_str()),
            Expr::CompoundIdentifier(parts) => {
                parts.last().is_some_and(|p| self.float_columns.contains(&p.value.as_str()))
            }
            Expr::CompoundFieldAccess { root, .. } => self.is_float(root),
            Expr::Nested(inner) | Expr::UnaryOp { expr: inner, .. } => self.is_float(inner),
            Expr::Value(value) => matches!(&value.value, Value::Number(text, _) if text.contains(['.', 'e', 'E'])),
            // DuckDB's `/` always divides as floats.
            Expr::BinaryOp { op: BinaryOperator::Divide, .. } => true,
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Plus | BinaryOperator::Minus | BinaryOperator::Multiply,
                right,
            } => self.is_float(left) || self.is_float(right),
            Expr::Cast { data_type, .. } => matches!(
                data_type,
                DataType::Double(_)
                    | DataType::DoublePrecision
                    | DataType::Float(_)
                    | DataType::Real
                    | DataType::Float4
                    | DataType::Float8
                    | DataType::Float32
                    | DataType::Float64
            ),
            Expr::Function(function) => {
                let [ObjectNamePart::Identifier(name)] = function.name.0.as_slice() else { return false };
                let name = name.value.to_lowercase();
                FLOAT_FUNCTIONS.contains(&name.as_str())
                    || (matches!(name.as_str(), "min" | "max" | "sum" | "abs" | "round")
                        && matches!(&function.args, FunctionArguments::List(list)
                            if matches!(list.args.first(), Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) if self.is_float(e))))
            }
            _ => false,
        }
    }
}

/// A plain or qualified column (also in parentheses): named after the column by both engines.
fn is_column(expr: &Expr) -> bool {
    match expr {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
        Expr::Nested(inner) => is_column(inner),
        _ => false,
    }
}

impl Namer<'_> {
    /// DuckDB's text for an expression.
    fn name(&self, expr: &Expr) -> String {
        match expr {
            Expr::Identifier(ident) => identifier(&ident.value),
            Expr::CompoundIdentifier(parts) => parts.iter().map(|p| identifier(&p.value)).collect::<Vec<_>>().join("."),
            Expr::Nested(inner) => self.name(inner),
            Expr::Value(value) => literal(&value.value),
            Expr::TypedString(typed) => {
                format!("CAST({} AS {})", literal(&typed.value.value), self.data_type(&typed.data_type))
            }
            Expr::UnaryOp { op, expr: inner } => self.unary(*op, inner),
            Expr::BinaryOp { op: BinaryOperator::And, .. } | Expr::BinaryOp { op: BinaryOperator::Or, .. } => {
                self.conjunction(expr)
            }
            Expr::BinaryOp { left, op, right } => match binary_operator(op) {
                Some(op) => format!("({} {op} {})", self.name(left), self.name(right)),
                None => expr.to_string(),
            },
            Expr::IsNull(inner) => format!("({} IS NULL)", self.name(inner)),
            Expr::IsNotNull(inner) => format!("({} IS NOT NULL)", self.name(inner)),
            Expr::IsTrue(inner) => self.is_boolean(inner, "IS NOT DISTINCT FROM", "true"),
            Expr::IsNotTrue(inner) => self.is_boolean(inner, "IS DISTINCT FROM", "true"),
            Expr::IsFalse(inner) => self.is_boolean(inner, "IS NOT DISTINCT FROM", "false"),
            Expr::IsNotFalse(inner) => self.is_boolean(inner, "IS DISTINCT FROM", "false"),
            Expr::IsDistinctFrom(a, b) => format!("({} IS DISTINCT FROM {})", self.name(a), self.name(b)),
            Expr::IsNotDistinctFrom(a, b) => format!("({} IS NOT DISTINCT FROM {})", self.name(a), self.name(b)),
            Expr::InList { expr: inner, list, negated } => {
                let text = format!("({} IN ({}))", self.name(inner), self.list(list));
                negate(text, *negated)
            }
            Expr::Between { expr: inner, negated, low, high } => {
                let text = format!("({} BETWEEN {} AND {})", self.name(inner), self.name(low), self.name(high));
                negate(text, *negated)
            }
            Expr::Like { negated, any: false, expr: inner, pattern, escape_char: None } => {
                self.like(inner, pattern, if *negated { "!~~" } else { "~~" })
            }
            Expr::ILike { negated, any: false, expr: inner, pattern, escape_char: None } => {
                self.like(inner, pattern, if *negated { "!~~*" } else { "~~*" })
            }
            Expr::Like { negated: false, any: false, expr: inner, pattern, escape_char: Some(escape) } => {
                format!("like_escape({}, {}, {})", self.name(inner), self.name(pattern), literal(&escape.value))
            }
            Expr::Cast { kind, expr: inner, data_type, format: None, .. } => {
                let function = if matches!(kind, CastKind::TryCast | CastKind::SafeCast) { "TRY_CAST" } else { "CAST" };
                format!("{function}({} AS {})", self.name(inner), self.data_type(data_type))
            }
            Expr::Case { operand, conditions, else_result, .. } => {
                let mut text = "CASE ".to_string();
                for case in conditions {
                    let condition = match operand {
                        Some(operand) => format!("({} = {})", self.name(operand), self.name(&case.condition)),
                        None => self.name(&case.condition),
                    };
                    text.push_str(&format!(" WHEN ({condition}) THEN ({})", self.name(&case.result)));
                }
                let otherwise = else_result.as_deref().map_or("NULL".to_string(), |e| self.name(e));
                format!("{text} ELSE {otherwise} END")
            }
            Expr::Function(function) => self.function(function).unwrap_or_else(|| expr.to_string()),
            Expr::Ceil { expr: inner, .. } => {
                format!("{}({})", self.spelling(&["ceiling", "ceil"]).to_lowercase(), self.name(inner))
            }
            Expr::Floor { expr: inner, .. } => format!("floor({})", self.name(inner)),
            Expr::Trim { expr: inner, trim_where: None, trim_what: None, trim_characters: None } => {
                format!("\"trim\"({})", self.name(inner))
            }
            Expr::Substring { expr: inner, substring_from, substring_for, shorthand, .. } => {
                let mut args = vec![self.name(inner)];
                args.extend(substring_from.iter().chain(substring_for).map(|e| self.name(e)));
                let function = if *shorthand || self.spelling(&["substring", "substr"]).to_lowercase() == "substr" {
                    "substr"
                } else {
                    "\"substring\""
                };
                format!("{function}({})", args.join(", "))
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                let mut text = self.name(root);
                for access in access_chain {
                    match access {
                        sqlparser::ast::AccessExpr::Subscript(Subscript::Index { index }) => {
                            text.push_str(&format!("[{}]", self.name(index)))
                        }
                        sqlparser::ast::AccessExpr::Subscript(Subscript::Slice {
                            lower_bound,
                            upper_bound,
                            stride: None,
                        }) => {
                            let bound = |b: &Option<Expr>| b.as_ref().map_or(String::new(), |e| self.name(e));
                            text.push_str(&format!("[{}:{}]", bound(lower_bound), bound(upper_bound)))
                        }
                        _ => return expr.to_string(),
                    }
                }
                text
            }
            other => other.to_string(),
        }
    }

    fn list(&self, exprs: &[Expr]) -> String {
        exprs.iter().map(|e| self.name(e)).collect::<Vec<_>>().join(", ")
    }

    /// `-1` for a negative number literal, `(-(x))` for anything else, as DuckDB folds literals.
    fn unary(&self, op: UnaryOperator, inner: &Expr) -> String {
        let inner = strip_nesting(inner);
        match (op, inner) {
            (UnaryOperator::Minus, Expr::Value(value)) if matches!(value.value, Value::Number(..)) => {
                format!("-{}", literal(&value.value))
            }
            (UnaryOperator::Minus, _) => format!("(-({}))", self.name(inner)),
            (UnaryOperator::Plus, _) => format!("(+({}))", self.name(inner)),
            (UnaryOperator::Not, _) => format!("(NOT {})", self.name(inner)),
            _ => format!("{op}{inner}"),
        }
    }

    /// A chain of ANDs (or ORs) is one flat conjunction in DuckDB: `((a > 1) AND b AND (c < 2))`.
    fn conjunction(&self, expr: &Expr) -> String {
        let Expr::BinaryOp { op, .. } = expr else { return self.name(expr) };
        let mut terms = Vec::new();
        flatten(expr, op, &mut terms);
        let keyword = if *op == BinaryOperator::And { " AND " } else { " OR " };
        format!("({})", terms.iter().map(|t| self.name(t)).collect::<Vec<_>>().join(keyword))
    }

    fn is_boolean(&self, inner: &Expr, comparison: &str, value: &str) -> String {
        format!("(CAST({} AS BOOLEAN) {comparison} {value})", self.name(inner))
    }

    fn like(&self, inner: &Expr, pattern: &Expr, operator: &str) -> String {
        format!("({} {operator} {})", self.name(inner), self.name(pattern))
    }

    fn function(&self, function: &Function) -> Option<String> {
        let [ObjectNamePart::Identifier(name)] = function.name.0.as_slice() else { return None };
        let lower = name.value.to_lowercase();
        let FunctionArguments::List(list) = &function.args else {
            return matches!(function.args, FunctionArguments::None).then(|| format!("{}()", function_name(&lower)));
        };
        let star = matches!(list.args.as_slice(), [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]);
        let mut args = Vec::new();
        for arg in &list.args {
            match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(self.name(e)),
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) if star => {}
                _ => return None,
            }
        }
        if !list.clauses.is_empty() {
            return None;
        }
        let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
        let mut text = match lower.as_str() {
            "coalesce" | "ifnull" => format!("COALESCE({})", args.join(", ")),
            // COUNT(*) is DuckDB's count_star(), except over a window, where it is count().
            "count" if star && function.over.is_none() => "count_star()".to_string(),
            _ => format!("{}({}{})", function_name(&lower), if distinct { "DISTINCT " } else { "" }, args.join(", ")),
        };
        if let Some(filter) = &function.filter {
            text.push_str(&format!(" FILTER (WHERE {})", self.name(filter)));
        }
        match &function.over {
            None => {}
            Some(WindowType::WindowSpec(spec)) if spec.window_name.is_none() => {
                let mut clauses = Vec::new();
                if !spec.partition_by.is_empty() {
                    clauses.push(format!("PARTITION BY {}", self.list(&spec.partition_by)));
                }
                if !spec.order_by.is_empty() {
                    let order: Vec<String> = spec.order_by.iter().map(|o| self.order_by(o)).collect();
                    clauses.push(format!("ORDER BY {}", order.join(", ")));
                }
                if let Some(frame) = &spec.window_frame {
                    clauses.push(self.frame(frame)?);
                }
                text.push_str(&format!(" OVER ({})", clauses.join(" ")));
            }
            Some(_) => return None,
        }
        Some(text)
    }

    fn order_by(&self, order: &OrderByExpr) -> String {
        let mut text = self.name(&order.expr);
        match order.options.asc {
            Some(true) => text.push_str(" ASC"),
            Some(false) => text.push_str(" DESC"),
            None => {}
        }
        match order.options.nulls_first {
            Some(true) => text.push_str(" NULLS FIRST"),
            Some(false) => text.push_str(" NULLS LAST"),
            None => {}
        }
        text
    }

    fn frame(&self, frame: &WindowFrame) -> Option<String> {
        let units = match frame.units {
            WindowFrameUnits::Rows => "ROWS",
            WindowFrameUnits::Range => "RANGE",
            WindowFrameUnits::Groups => "GROUPS",
        };
        let bound = |bound: &WindowFrameBound| match bound {
            WindowFrameBound::CurrentRow => "CURRENT ROW".to_string(),
            WindowFrameBound::Preceding(None) => "UNBOUNDED PRECEDING".to_string(),
            WindowFrameBound::Following(None) => "UNBOUNDED FOLLOWING".to_string(),
            WindowFrameBound::Preceding(Some(e)) => format!("{} PRECEDING", self.name(e)),
            WindowFrameBound::Following(Some(e)) => format!("{} FOLLOWING", self.name(e)),
        };
        let end = frame.end_bound.as_ref()?;
        Some(format!("{units} BETWEEN {} AND {}", bound(&frame.start_bound), bound(end)))
    }

    /// DuckDB writes the types its grammar knows by their canonical names and every other type
    /// name as the query spelled it.
    fn data_type(&self, data_type: &DataType) -> String {
        let decimal = |info: &ExactNumberInfo| match info {
            ExactNumberInfo::None => "DECIMAL".to_string(),
            ExactNumberInfo::Precision(p) => format!("DECIMAL({p})"),
            ExactNumberInfo::PrecisionAndScale(p, s) => format!("DECIMAL({p}, {s})"),
        };
        match data_type {
            DataType::Int(None) | DataType::Integer(None) => "INTEGER".into(),
            DataType::SmallInt(None) => "SMALLINT".into(),
            DataType::BigInt(None) => "BIGINT".into(),
            DataType::Real | DataType::Float(ExactNumberInfo::None) => "FLOAT".into(),
            DataType::DoublePrecision => "DOUBLE".into(),
            DataType::Boolean => "BOOLEAN".into(),
            DataType::Varchar(length) | DataType::CharacterVarying(length) | DataType::CharVarying(length) => {
                length.as_ref().map_or("VARCHAR".into(), |l| format!("VARCHAR({l})"))
            }
            DataType::Char(None) | DataType::Character(None) => "VARCHAR".into(),
            DataType::Decimal(info) | DataType::Numeric(info) | DataType::Dec(info) => decimal(info),
            DataType::Timestamp(None, _) => "TIMESTAMP".into(),
            DataType::Time(None, _) => "TIME".into(),
            other => self.spelling(&[&other.to_string().to_lowercase()]),
        }
    }

    /// How the query spells the first of `words` it contains (compared without case), or the
    /// first word itself.
    fn spelling(&self, words: &[&str]) -> String {
        let lower = self.source.to_lowercase();
        for word in words {
            let mut from = 0;
            while let Some(found) = lower[from..].find(word) {
                let start = from + found;
                let end = start + word.len();
                let boundary = |i: Option<char>| !i.is_some_and(|c| c.is_alphanumeric() || c == '_');
                if boundary(lower[..start].chars().next_back()) && boundary(lower[end..].chars().next()) {
                    return self.source.get(start..end).unwrap_or(word).to_string();
                }
                from = end;
            }
        }
        words.first().map_or(String::new(), |w| w.to_string())
    }
}

fn strip_nesting(expr: &Expr) -> &Expr {
    match expr {
        Expr::Nested(inner) => strip_nesting(inner),
        other => other,
    }
}

fn flatten<'e>(expr: &'e Expr, op: &BinaryOperator, terms: &mut Vec<&'e Expr>) {
    match strip_nesting(expr) {
        Expr::BinaryOp { left, op: inner, right } if inner == op => {
            flatten(left, op, terms);
            flatten(right, op, terms);
        }
        other => terms.push(other),
    }
}

fn negate(text: String, negated: bool) -> String {
    if negated {
        format!("(NOT {text})")
    } else {
        text
    }
}

fn binary_operator(op: &BinaryOperator) -> Option<&'static str> {
    Some(match op {
        BinaryOperator::Plus => "+",
        BinaryOperator::Minus => "-",
        BinaryOperator::Multiply => "*",
        BinaryOperator::Divide => "/",
        BinaryOperator::Modulo => "%",
        BinaryOperator::StringConcat => "||",
        BinaryOperator::Gt => ">",
        BinaryOperator::Lt => "<",
        BinaryOperator::GtEq => ">=",
        BinaryOperator::LtEq => "<=",
        BinaryOperator::Eq => "=",
        BinaryOperator::NotEq => "!=",
        BinaryOperator::DuckIntegerDivide | BinaryOperator::MyIntegerDivide => "//",
        BinaryOperator::PGExp => "^",
        _ => return None,
    })
}

/// A literal as DuckDB writes it: numbers as typed, strings quoted with `''` escapes.
fn literal(value: &Value) -> String {
    match value {
        Value::Number(text, _) => text.to_string(),
        Value::SingleQuotedString(text) => format!("'{}'", text.replace('\'', "''")),
        Value::Boolean(b) => b.to_string(),
        Value::Null => "NULL".into(),
        other => other.to_string(),
    }
}

/// A function's name: lower case, quoted when it is a keyword (`"first"(x)`).
fn function_name(lower: &str) -> String {
    if is_keyword(lower) {
        format!("\"{lower}\"")
    } else {
        lower.to_string()
    }
}

/// A column or table name: as written, quoted when DuckDB would have to quote it.
fn identifier(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain && !is_keyword(&name.to_lowercase()) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn is_keyword(lower: &str) -> bool {
    DUCKDB_KEYWORDS.binary_search(&lower).is_ok()
}

/// `SELECT DISTINCT keyword_name FROM duckdb_keywords() ORDER BY 1` in DuckDB 2.0.0 (every
/// category: DuckDB quotes them all in names). tests/python/check_sql_parity.py fails when they differ.
pub const DUCKDB_KEYWORDS: &[&str] = &[
    "abort",
    "absolute",
    "access",
    "action",
    "add",
    "admin",
    "after",
    "aggregate",
    "all",
    "also",
    "alter",
    "always",
    "analyse",
    "analyze",
    "and",
    "anti",
    "any",
    "approx",
    "array",
    "as",
    "asc",
    "asof",
    "assertion",
    "assignment",
    "asymmetric",
    "at",
    "attach",
    "attribute",
    "authorization",
    "backward",
    "before",
    "begin",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "by",
    "cache",
    "call",
    "called",
    "cascade",
    "cascaded",
    "case",
    "cast",
    "catalog",
    "centuries",
    "century",
    "chain",
    "char",
    "character",
    "characteristics",
    "check",
    "checkpoint",
    "class",
    "close",
    "cluster",
    "coalesce",
    "collate",
    "collation",
    "column",
    "columns",
    "comment",
    "comments",
    "commit",
    "committed",
    "compression",
    "concurrently",
    "configuration",
    "conflict",
    "connect",
    "connection",
    "constraint",
    "constraints",
    "content",
    "continue",
    "conversion",
    "copy",
    "cost",
    "create",
    "cross",
    "csv",
    "cube",
    "current",
    "cursor",
    "cycle",
    "data",
    "database",
    "day",
    "days",
    "deallocate",
    "dec",
    "decade",
    "decades",
    "decimal",
    "declare",
    "default",
    "defaults",
    "deferrable",
    "deferred",
    "definer",
    "delete",
    "delimiter",
    "delimiters",
    "depends",
    "desc",
    "describe",
    "destroy",
    "detach",
    "dictionary",
    "disable",
    "discard",
    "disconnect",
    "distance",
    "distinct",
    "do",
    "document",
    "domain",
    "double",
    "drop",
    "each",
    "else",
    "enable",
    "encoding",
    "encrypted",
    "end",
    "enum",
    "error",
    "escape",
    "event",
    "exact",
    "except",
    "exclude",
    "excluding",
    "exclusive",
    "execute",
    "exists",
    "explain",
    "export",
    "export_state",
    "extension",
    "extensions",
    "external",
    "extract",
    "false",
    "family",
    "fetch",
    "filter",
    "first",
    "float",
    "following",
    "for",
    "force",
    "foreign",
    "forward",
    "freeze",
    "from",
    "full",
    "function",
    "functions",
    "generated",
    "glob",
    "global",
    "grant",
    "granted",
    "group",
    "grouping",
    "grouping_id",
    "groups",
    "handler",
    "having",
    "header",
    "hold",
    "hour",
    "hours",
    "identity",
    "if",
    "ignore",
    "ilike",
    "immediate",
    "immutable",
    "implicit",
    "import",
    "in",
    "include",
    "including",
    "increment",
    "index",
    "indexes",
    "inherit",
    "inherits",
    "initially",
    "inline",
    "inner",
    "inout",
    "input",
    "insensitive",
    "insert",
    "install",
    "instead",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "invoker",
    "is",
    "isnull",
    "isolation",
    "join",
    "json",
    "key",
    "label",
    "lambda",
    "language",
    "large",
    "last",
    "lateral",
    "leading",
    "leakproof",
    "left",
    "level",
    "like",
    "limit",
    "listen",
    "load",
    "local",
    "location",
    "lock",
    "locked",
    "logged",
    "macro",
    "map",
    "mapping",
    "match",
    "matched",
    "materialized",
    "maxvalue",
    "merge",
    "method",
    "microsecond",
    "microseconds",
    "millennia",
    "millennium",
    "millisecond",
    "milliseconds",
    "minute",
    "minutes",
    "minvalue",
    "mode",
    "month",
    "months",
    "move",
    "name",
    "names",
    "national",
    "natural",
    "nchar",
    "nearest",
    "new",
    "next",
    "no",
    "none",
    "not",
    "nothing",
    "notify",
    "notnull",
    "nowait",
    "null",
    "nullif",
    "nulls",
    "numeric",
    "object",
    "of",
    "off",
    "offset",
    "oids",
    "old",
    "on",
    "only",
    "operator",
    "option",
    "options",
    "or",
    "order",
    "ordinality",
    "others",
    "out",
    "outer",
    "over",
    "overlaps",
    "overlay",
    "overriding",
    "owned",
    "owner",
    "parallel",
    "parser",
    "partial",
    "partition",
    "partitioned",
    "passing",
    "password",
    "percent",
    "persistent",
    "pivot",
    "pivot_longer",
    "pivot_wider",
    "placing",
    "plans",
    "policy",
    "position",
    "positional",
    "pragma",
    "preceding",
    "precision",
    "prepare",
    "prepared",
    "preserve",
    "primary",
    "prior",
    "privileges",
    "procedural",
    "procedure",
    "program",
    "publication",
    "qualify",
    "quarter",
    "quarters",
    "quote",
    "range",
    "read",
    "real",
    "reassign",
    "recheck",
    "recursive",
    "ref",
    "references",
    "referencing",
    "refresh",
    "register",
    "reindex",
    "relative",
    "release",
    "rename",
    "repeatable",
    "replace",
    "replica",
    "reset",
    "resource",
    "resources",
    "respect",
    "restart",
    "restrict",
    "returning",
    "returns",
    "revoke",
    "right",
    "role",
    "rollback",
    "rollup",
    "row",
    "rows",
    "rule",
    "sample",
    "savepoint",
    "schema",
    "schemas",
    "scope",
    "scroll",
    "search",
    "second",
    "seconds",
    "secret",
    "secure",
    "security",
    "select",
    "semi",
    "sequence",
    "sequences",
    "serializable",
    "server",
    "session",
    "set",
    "setof",
    "sets",
    "share",
    "show",
    "similar",
    "similarity",
    "simple",
    "skip",
    "smallint",
    "snapshot",
    "some",
    "sorted",
    "source",
    "sql",
    "stable",
    "standalone",
    "start",
    "statement",
    "statistics",
    "stdin",
    "stdout",
    "storage",
    "stored",
    "strict",
    "strip",
    "struct",
    "subscription",
    "substring",
    "summarize",
    "symmetric",
    "sysid",
    "system",
    "table",
    "tables",
    "tablesample",
    "tablespace",
    "target",
    "temp",
    "template",
    "temporary",
    "text",
    "then",
    "ties",
    "time",
    "timestamp",
    "to",
    "trailing",
    "transaction",
    "transform",
    "treat",
    "trigger",
    "trim",
    "true",
    "truncate",
    "trusted",
    "try_cast",
    "tuple",
    "type",
    "types",
    "unbounded",
    "uncommitted",
    "unencrypted",
    "union",
    "unique",
    "unknown",
    "unlisten",
    "unlogged",
    "unpack",
    "unpivot",
    "until",
    "update",
    "use",
    "user",
    "using",
    "vacuum",
    "valid",
    "validate",
    "validator",
    "value",
    "values",
    "varchar",
    "variable",
    "variadic",
    "varying",
    "verbose",
    "version",
    "view",
    "views",
    "virtual",
    "volatile",
    "week",
    "weeks",
    "when",
    "where",
    "whitespace",
    "window",
    "with",
    "within",
    "without",
    "work",
    "wrapper",
    "write",
    "xml",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
    "year",
    "years",
    "yes",
    "zone",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn duckdb_names(sql: &str, float_columns: &[&str]) -> Result<String, String> {
        let mut statements = Parser::parse_sql(&GenericDialect, sql).map_err(|e| e.to_string())?;
        rewrite(&mut statements, sql, float_columns)?;
        Ok(statements.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
    }

    fn aliases(sql: &str) -> String {
        duckdb_names(sql, &["entropy"]).unwrap()
    }

    #[test]
    fn aggregates_get_duckdb_names_and_columns_keep_theirs() {
        assert_eq!(
            aliases("SELECT recipe, MIN(teacher_loss), MAX(teacher_loss), COUNT(*) FROM logits GROUP BY recipe"),
            r#"SELECT recipe, MIN(teacher_loss) AS "min(teacher_loss)", MAX(teacher_loss) AS "max(teacher_loss)", COUNT(*) AS "count_star()" FROM logits GROUP BY recipe"#
        );
    }

    #[test]
    fn expressions_are_named_as_duckdb_prints_them() {
        let cases = [
            (r#"COUNT(DISTINCT "group")"#, r#"count(DISTINCT "group")"#),
            ("x + 1", "(x + 1)"),
            ("-x", "(-(x))"),
            ("- 1", "-1"),
            ("x <> 1 AND y > 2 AND z", "((x != 1) AND (y > 2) AND z)"),
            ("recipe LIKE 'mix%'", "(recipe ~~ 'mix%')"),
            ("recipe NOT LIKE 'mix%'", "(recipe !~~ 'mix%')"),
            ("x NOT IN (1, 2)", "(NOT (x IN (1, 2)))"),
            ("x BETWEEN 1 AND 2", "(x BETWEEN 1 AND 2)"),
            ("CASE WHEN teacher_correct THEN 1 ELSE 0 END", "CASE  WHEN (teacher_correct) THEN (1) ELSE 0 END"),
            ("CASE x WHEN 1 THEN 'one' END", "CASE  WHEN ((x = 1)) THEN ('one') ELSE NULL END"),
            ("AVG(CAST(teacher_correct AS DOUBLE))", "avg(CAST(teacher_correct AS DOUBLE))"),
            ("avg(teacher_correct::double)", "avg(CAST(teacher_correct AS double))"),
            ("CAST(x AS int)", "CAST(x AS INTEGER)"),
            (
                "ROW_NUMBER() OVER (PARTITION BY recipe ORDER BY entropy DESC)",
                "row_number() OVER (PARTITION BY recipe ORDER BY entropy DESC)",
            ),
            ("COUNT(*) OVER (PARTITION BY s)", "count() OVER (PARTITION BY s)"),
            ("first(x)", r#""first"(x)"#),
            ("ROUND(AVG(p_label), 3)", "round(avg(p_label), 3)"),
            ("y IS NOT NULL", "(y IS NOT NULL)"),
            ("'it''s'", "'it''s'"),
            ("scaling_factors[1]", "scaling_factors[1]"),
            ("COALESCE(lam, 1.0)", "COALESCE(lam, 1.0)"),
        ];
        for (expression, expected) in cases {
            let sql = format!("SELECT {expression} FROM t");
            let statements = Parser::parse_sql(&GenericDialect, &sql).unwrap();
            let sqlparser::ast::Statement::Query(query) = &statements[0] else { panic!() };
            let sqlparser::ast::SetExpr::Select(select) = query.body.as_ref() else { panic!() };
            let SelectItem::UnnamedExpr(expr) = &select.projection[0] else { panic!() };
            assert_eq!(Namer { source: &sql }.name(expr), expected, "{expression}");
        }
    }

    #[test]
    fn subqueries_and_ctes_are_named_too() {
        let rewritten = aliases("WITH a AS (SELECT MAX(x) FROM t) SELECT * FROM (SELECT COUNT(*) FROM a) b");
        assert!(
            rewritten.contains(r#"MAX(x) AS "max(x)""#) && rewritten.contains(r#"COUNT(*) AS "count_star()""#),
            "{rewritten}"
        );
    }

    #[test]
    fn explicit_aliases_are_left_alone() {
        assert_eq!(aliases("SELECT COUNT(*) AS n FROM views"), "SELECT COUNT(*) AS n FROM views");
    }

    #[test]
    fn order_by_an_aggregate_sorts_by_its_output_column() {
        assert_eq!(
            aliases("SELECT recipe, COUNT(*) FROM views GROUP BY recipe ORDER BY COUNT(*) DESC, 1"),
            r#"SELECT recipe, COUNT(*) AS "count_star()" FROM views GROUP BY recipe ORDER BY "count_star()" DESC, 1"#
        );
        assert_eq!(
            aliases("SELECT recipe, COUNT(*) AS n FROM views GROUP BY recipe ORDER BY COUNT(*)"),
            "SELECT recipe, COUNT(*) AS n FROM views GROUP BY recipe ORDER BY n"
        );
    }

    #[test]
    fn order_by_an_aggregate_outside_the_select_list_sorts_by_a_hidden_column() {
        assert_eq!(
            aliases("SELECT recipe FROM views GROUP BY recipe ORDER BY COUNT(*) DESC LIMIT 2"),
            r#"SELECT * EXCLUDE ("__kdstore_order_1") FROM (SELECT recipe, COUNT(*) AS "__kdstore_order_1" FROM views GROUP BY recipe ORDER BY "__kdstore_order_1" DESC LIMIT 2)"#
        );
    }

    #[test]
    fn sum_of_a_number_counts() {
        assert_eq!(aliases("SELECT SUM(1) FROM views"), r#"SELECT (1 * count(*)) AS "sum(1)" FROM views"#);
    }

    #[test]
    fn float_casts_to_integers_round_and_keep_their_name() {
        assert_eq!(
            aliases("SELECT CAST(entropy * 10 AS INTEGER), CAST(teacher_correct AS INTEGER) FROM logits"),
            r#"SELECT CAST(round(entropy * 10) AS INTEGER) AS "CAST((entropy * 10) AS INTEGER)", CAST(teacher_correct AS INTEGER) AS "CAST(teacher_correct AS INTEGER)" FROM logits"#
        );
    }

    #[test]
    fn grouping_sets_are_refused_with_a_readable_message() {
        let error = duckdb_names("SELECT split, COUNT(*) FROM samples GROUP BY ROLLUP(split, label)", &[]).unwrap_err();
        assert_eq!(
            error,
            "GROUP BY ROLLUP (split, label) is not supported by Polars SQL; UNION ALL one GROUP BY per grouping level instead"
        );
    }

    #[test]
    fn a_window_over_an_aggregate_is_refused() {
        let error = duckdb_names("SELECT split, SUM(COUNT(*)) OVER () FROM samples GROUP BY split", &[]).unwrap_err();
        assert!(error.contains("COUNT(*)") && error.contains("subquery"), "{error}");
        assert!(duckdb_names("SELECT SUM(x) OVER (PARTITION BY y) FROM t", &[]).is_ok());
    }

    #[test]
    fn the_keyword_list_is_sorted_for_binary_search() {
        assert!(DUCKDB_KEYWORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(is_keyword("group") && is_keyword("first") && !is_keyword("max"));
    }
}
