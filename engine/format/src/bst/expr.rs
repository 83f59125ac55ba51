//! The expressions of BuildStream's `(?)` conditionals: the subset of
//! jinja2 expressions that BuildStream projects use. Literals (`'a'`, `"a"`,
//! `True`, `False`, integers), option names, `==` `!=` `<` `<=` `>` `>=`,
//! `in` / `not in` (a flags or element-mask option holds a list), `not`,
//! `and`, `or` and parentheses. Evaluation is total: a type mismatch is an
//! error, never a panic.

use std::collections::BTreeMap;

/// The value of an option, or of a literal in an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Str(String),
    Int(i64),
    List(Vec<String>),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Str(s) => !s.is_empty(),
            Value::Int(i) => *i != 0,
            Value::List(l) => !l.is_empty(),
        }
    }
    fn describe(&self) -> &'static str {
        match self {
            Value::Bool(_) => "a boolean",
            Value::Str(_) => "a string",
            Value::Int(_) => "a number",
            Value::List(_) => "a list",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Int(i64),
    Op(&'static str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' | b')' | b'[' | b']' | b',' => {
                out.push(match c {
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b'[' => Tok::LBracket,
                    b']' => Tok::RBracket,
                    _ => Tok::Comma,
                });
                i += 1;
            }
            b'\'' | b'"' => {
                let end = s[i + 1..]
                    .find(c as char)
                    .ok_or_else(|| format!("unterminated string starting at column {}", i + 1))?;
                out.push(Tok::Str(s[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = s.get(i..i + 2).unwrap_or("");
                let op = match two {
                    "==" => "==",
                    "!=" => "!=",
                    "<=" => "<=",
                    ">=" => ">=",
                    _ if c == b'<' => "<",
                    _ if c == b'>' => ">",
                    _ => return Err(format!("unexpected `{}`", c as char)),
                };
                i += op.len();
                out.push(Tok::Op(op));
            }
            b'0'..=b'9' => {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let n = s[start..i]
                    .parse()
                    .map_err(|_| format!("number `{}` too large", &s[start..i]))?;
                out.push(Tok::Int(n));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-')
                {
                    i += 1;
                }
                out.push(Tok::Name(s[start..i].to_string()));
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected `{ch}`"));
            }
        }
    }
    Ok(out)
}

/// A parsed expression.
#[derive(Debug, Clone)]
enum Expr {
    Lit(Value),
    Var(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(&'static str, Box<Expr>, Box<Expr>),
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn is_name(&self, n: &str) -> bool {
        matches!(self.peek(), Some(Tok::Name(x)) if x == n)
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut l = self.and()?;
        while self.is_name("or") {
            self.pos += 1;
            l = Expr::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut l = self.not()?;
        while self.is_name("and") {
            self.pos += 1;
            l = Expr::And(Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }
    fn not(&mut self) -> Result<Expr, String> {
        if self.is_name("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Expr, String> {
        let l = self.atom()?;
        let op = match self.peek() {
            Some(Tok::Op(op)) => {
                let op = *op;
                self.pos += 1;
                op
            }
            Some(Tok::Name(n)) if n == "in" => {
                self.pos += 1;
                "in"
            }
            Some(Tok::Name(n)) if n == "not" => {
                if matches!(self.toks.get(self.pos + 1), Some(Tok::Name(x)) if x == "in") {
                    self.pos += 2;
                    "not in"
                } else {
                    return Ok(l);
                }
            }
            _ => return Ok(l),
        };
        let r = self.atom()?;
        Ok(Expr::Cmp(op, Box::new(l), Box::new(r)))
    }
    /// `[a, b]` or `(a, b)`: a list of string literals (after the opening bracket).
    fn list(&mut self, close: &Tok) -> Result<Expr, String> {
        let mut items = Vec::new();
        loop {
            match self.next() {
                Some(t) if &t == close => break,
                Some(Tok::Str(s)) => items.push(s),
                Some(t) => return Err(format!("unexpected {t:?} in a list")),
                None => return Err("missing the end of a list".into()),
            }
            match self.next() {
                Some(Tok::Comma) => {}
                Some(t) if &t == close => break,
                _ => return Err("expected `,` between the items of a list".into()),
            }
        }
        Ok(Expr::Lit(Value::List(items)))
    }

    fn atom(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::LBracket) => self.list(&Tok::RBracket),
            Some(Tok::LParen) => {
                // a tuple of strings, or a parenthesised expression
                if matches!(self.peek(), Some(Tok::Str(_)))
                    && matches!(self.toks.get(self.pos + 1), Some(Tok::Comma))
                {
                    return self.list(&Tok::RParen);
                }
                let e = self.or()?;
                match self.next() {
                    Some(Tok::RParen) => Ok(e),
                    _ => Err("missing `)`".into()),
                }
            }
            Some(Tok::Str(s)) => Ok(Expr::Lit(Value::Str(s))),
            Some(Tok::Int(i)) => Ok(Expr::Lit(Value::Int(i))),
            Some(Tok::Name(n)) => Ok(match n.as_str() {
                "True" | "true" => Expr::Lit(Value::Bool(true)),
                "False" | "false" => Expr::Lit(Value::Bool(false)),
                "and" | "or" | "not" | "in" => return Err(format!("unexpected `{n}`")),
                _ => Expr::Var(n),
            }),
            Some(Tok::RParen | Tok::RBracket | Tok::Comma) => {
                Err("unexpected bracket or comma".into())
            }
            Some(Tok::Op(op)) => Err(format!("unexpected `{op}`")),
            None => Err("the expression ends too early".into()),
        }
    }
}

fn eval(e: &Expr, vars: &BTreeMap<String, Value>) -> Result<Value, String> {
    Ok(match e {
        Expr::Lit(v) => v.clone(),
        Expr::Var(n) => vars.get(n).cloned().ok_or_else(|| {
            let known: Vec<&str> = vars.keys().map(String::as_str).collect();
            if known.is_empty() {
                format!("no option `{n}`: the project declares no options")
            } else {
                format!("no option `{n}` (options: {})", known.join(", "))
            }
        })?,
        Expr::Not(x) => Value::Bool(!eval(x, vars)?.truthy()),
        Expr::And(a, b) => Value::Bool(eval(a, vars)?.truthy() && eval(b, vars)?.truthy()),
        Expr::Or(a, b) => Value::Bool(eval(a, vars)?.truthy() || eval(b, vars)?.truthy()),
        Expr::Cmp(op, a, b) => {
            let (a, b) = (eval(a, vars)?, eval(b, vars)?);
            Value::Bool(compare(op, &a, &b)?)
        }
    })
}

fn compare(op: &str, a: &Value, b: &Value) -> Result<bool, String> {
    use std::cmp::Ordering;
    if op == "in" || op == "not in" {
        let found = match (a, b) {
            (Value::Str(x), Value::List(l)) => l.contains(x),
            (Value::Str(x), Value::Str(s)) => s.contains(x.as_str()),
            _ => {
                return Err(format!(
                    "`{op}` needs a string on the left and a list (a flags option) on the right, not {} and {}",
                    a.describe(),
                    b.describe()
                ))
            }
        };
        return Ok(found == (op == "in"));
    }
    let ord = match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::List(x), Value::List(y)) => {
            let (mut x, mut y) = (x.clone(), y.clone());
            x.sort();
            y.sort();
            x.cmp(&y)
        }
        // jinja2 compares values of different types as unequal
        _ if op == "==" => return Ok(false),
        _ if op == "!=" => return Ok(true),
        _ => {
            return Err(format!(
                "cannot compare {} with {} using `{op}`",
                a.describe(),
                b.describe()
            ))
        }
    };
    Ok(match op {
        "==" => ord == Ordering::Equal,
        "!=" => ord != Ordering::Equal,
        "<" => ord == Ordering::Less,
        "<=" => ord != Ordering::Greater,
        ">" => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    })
}

/// Evaluate the condition `text` over the option values `vars`.
pub fn evaluate(text: &str, vars: &BTreeMap<String, Value>) -> Result<bool, String> {
    let toks = lex(text)?;
    if toks.is_empty() {
        return Err("empty condition".into());
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.or()?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {t:?} after the expression"));
    }
    Ok(eval(&e, vars)?.truthy())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, Value> {
        let mut v = BTreeMap::new();
        v.insert("flavor".into(), Value::Str("normal".into()));
        v.insert("debug".into(), Value::Bool(false));
        v.insert("arch".into(), Value::Str("x86_64".into()));
        v.insert("flags".into(), Value::List(vec!["a".into(), "b".into()]));
        v
    }

    #[test]
    fn the_forms_projects_use() {
        let v = vars();
        for (e, want) in [
            ("flavor == \"normal\"", true),
            ("flavor == 'somber'", false),
            ("flavor != 'somber'", true),
            ("debug", false),
            ("not debug", true),
            ("debug == False", true),
            ("debug == True", false),
            ("arch == \"x86_64\" and not debug", true),
            ("arch in ('x86_64')", true),
            (
                "(arch == 'aarch64' or arch == 'x86_64') and flavor == 'normal'",
                true,
            ),
            ("'a' in flags", true),
            ("'c' in flags", false),
            ("'c' not in flags", true),
            ("arch in [\"x86_64\", \"i686\"]", true),
            ("arch not in (\"aarch64\", \"ppc64\")", true),
            ("arch in (\"aarch64\", \"ppc64\")", false),
            ("1 < 2", true),
        ] {
            assert_eq!(evaluate(e, &v), Ok(want), "{e}");
        }
    }

    #[test]
    fn errors_say_what() {
        let v = vars();
        assert!(evaluate("colour == 'red'", &v)
            .unwrap_err()
            .contains("no option `colour`"));
        assert!(evaluate("flavor ==", &v)
            .unwrap_err()
            .contains("ends too early"));
        assert!(evaluate("(debug", &v).unwrap_err().contains("missing `)`"));
        assert!(evaluate("flavor == 'x", &v)
            .unwrap_err()
            .contains("unterminated"));
        assert!(evaluate("debug in flavor", &v).is_err());
        assert!(evaluate("", &v).is_err());
        assert!(evaluate("a b", &v).is_err());
    }
}
