//! `setup_requires` written as a literal in setup.py, found by parsing, never by running it.

use rustpython_parser::ast::{self, Constant, Expr, Stmt};
use std::collections::HashMap;

#[derive(Debug, PartialEq)]
pub enum SetupRequires {
    /// No `setup(setup_requires=...)` call was found.
    Absent,
    Literal(Vec<String>),
    /// Present but computed; the build backend will report it at build time.
    NotLiteral,
}

/// Nesting the parser is asked to follow: real setup.py files stay far below it.
const MAX_NESTING: usize = 100;
/// Binary operators in one statement, likewise (a `1+1+…` chain is a tree as deep as it is long).
const MAX_OPERATORS: usize = 2_000;
/// The parser recurses; it runs on a thread of its own with this much stack.
const PARSER_STACK: usize = 256 << 20;

/// `setup_requires` as written in a setup.py. A hostile or pathological file is an `Err` (the
/// caller warns and leaves the answer to the build-time hook), never a crash of the process.
pub fn setup_requires(source: &str) -> Result<SetupRequires, String> {
    if let Some(why) = too_deep(source) {
        return Err(why);
    }
    let source = source.to_string();
    std::thread::Builder::new()
        .name("setup.py parser".into())
        .stack_size(PARSER_STACK)
        .spawn(move || {
            use rustpython_parser::Parse;
            let suite = ast::Suite::parse(&source, "setup.py").map_err(|e| e.to_string())?;
            let mut names = HashMap::new();
            let mut found = SetupRequires::Absent;
            visit(&suite, &mut names, &mut found);
            Ok(found)
        })
        .map_err(|e| format!("cannot start the parser: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("the parser failed on it".into()))
}

/// A cheap scan that refuses what would make the parser recurse too deep. Strings are not
/// skipped, so it errs towards refusing; a refused file only means the answer comes later.
fn too_deep(source: &str) -> Option<String> {
    let (mut depth, mut deepest, mut operators, mut most) = (0usize, 0usize, 0usize, 0usize);
    for c in source.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '|' | '&' | '^' | '<' | '>' => {
                operators += 1;
                most = most.max(operators);
            }
            '\n' if depth == 0 => operators = 0,
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Some(format!("brackets nested {deepest} deep"));
    }
    if most > MAX_OPERATORS {
        return Some(format!("{most} operators in one statement"));
    }
    None
}

fn visit<'a>(body: &'a [Stmt], names: &mut HashMap<String, &'a Expr>, found: &mut SetupRequires) {
    for stmt in body {
        match stmt {
            Stmt::Assign(assign) => {
                for target in &assign.targets {
                    if let Expr::Name(name) = target {
                        names.insert(name.id.to_string(), &assign.value);
                    }
                }
                check_expr(&assign.value, names, found);
            }
            Stmt::Expr(e) => check_expr(&e.value, names, found),
            Stmt::If(s) => {
                visit(&s.body, names, found);
                visit(&s.orelse, names, found);
            }
            Stmt::With(s) => visit(&s.body, names, found),
            Stmt::Try(s) => {
                visit(&s.body, names, found);
                visit(&s.orelse, names, found);
                visit(&s.finalbody, names, found);
            }
            Stmt::FunctionDef(s) => visit(&s.body, names, found),
            _ => {}
        }
    }
}

fn check_expr(expr: &Expr, names: &HashMap<String, &Expr>, found: &mut SetupRequires) {
    let Expr::Call(call) = expr else { return };
    let is_setup = match call.func.as_ref() {
        Expr::Name(n) => n.id.as_str() == "setup",
        Expr::Attribute(a) => a.attr.as_str() == "setup",
        _ => false,
    };
    if !is_setup {
        return;
    }
    for keyword in &call.keywords {
        if keyword.arg.as_ref().map(|a| a.as_str()) != Some("setup_requires") {
            continue;
        }
        *found = match literal_strings(&keyword.value, names) {
            Some(reqs) => SetupRequires::Literal(reqs),
            None => SetupRequires::NotLiteral,
        };
    }
}

fn literal_strings(expr: &Expr, names: &HashMap<String, &Expr>) -> Option<Vec<String>> {
    match expr {
        Expr::Constant(ast::ExprConstant {
            value: Constant::Str(s),
            ..
        }) => Some(
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        ),
        Expr::List(ast::ExprList { elts, .. }) | Expr::Tuple(ast::ExprTuple { elts, .. }) => {
            let mut out = Vec::new();
            for elt in elts {
                out.extend(literal_strings(elt, names)?);
            }
            Some(out)
        }
        Expr::Name(name) => literal_strings(names.get(name.id.as_str())?, &HashMap::new()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pathological_files_are_an_error_not_a_crash() {
        let nested = format!("x = {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
        assert!(setup_requires(&nested).unwrap_err().contains("nested"));
        let chain = format!("x = 1{}\n", "+1".repeat(10_000));
        assert!(setup_requires(&chain).unwrap_err().contains("operators"));
        // Just under the bounds, the parser (on its own stack) copes.
        let deep = format!("x = {}{}\n", "[".repeat(99), "]".repeat(99));
        assert_eq!(setup_requires(&deep), Ok(SetupRequires::Absent));
        let long = format!("x = 1{}\n", "+1".repeat(1_999));
        assert_eq!(setup_requires(&long), Ok(SetupRequires::Absent));
    }

    #[test]
    fn finds_literal_and_named_setup_requires() {
        let src = "from setuptools import setup\nif True:\n    setup(name='x', setup_requires=['setuptools_scm'])\n";
        assert_eq!(
            setup_requires(src).unwrap(),
            SetupRequires::Literal(vec!["setuptools_scm".into()])
        );
        let src = "import setuptools\nSR = ('a>=1', 'b')\nsetuptools.setup(setup_requires=SR)\n";
        assert_eq!(
            setup_requires(src).unwrap(),
            SetupRequires::Literal(vec!["a>=1".into(), "b".into()])
        );
        let src = "from setuptools import setup\nsetup(setup_requires=compute())\n";
        assert_eq!(setup_requires(src).unwrap(), SetupRequires::NotLiteral);
        assert_eq!(
            setup_requires("setup(name='x')\n").unwrap(),
            SetupRequires::Absent
        );
        assert!(setup_requires("def (:\n").is_err());
    }
}
