//! SCIM filters (RFC 7644 §3.4.2.2) over a rendered resource as JSON:
//! `attrPath op value` (eq ne co sw ew gt ge lt le, `pr`), `and`, `or`,
//! `not (…)`, parentheses, value paths `emails[type eq "work"].value`.
//! Attribute names match case-insensitively; strings compare
//! case-insensitively except `id` and `externalId` (caseExact).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Cmp {
        path: Vec<String>,
        op: String,
        value: Value,
    },
    Present(Vec<String>),
    /// `attr[filter]` optionally followed by `.sub`-less comparison.
    ValuePath {
        attr: String,
        inner: Box<Filter>,
    },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    LBracket,
    RBracket,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '[' => {
                out.push(Tok::LBracket);
                i += 1;
            }
            ']' => {
                out.push(Tok::RBracket);
                i += 1;
            }
            '"' => {
                let mut j = i + 1;
                let mut text = String::from('"');
                while j < b.len() && b[j] != '"' {
                    if b[j] == '\\' && j + 1 < b.len() {
                        text.push(b[j]);
                        j += 1;
                    }
                    text.push(b[j]);
                    j += 1;
                }
                if j >= b.len() {
                    return Err("unterminated string".into());
                }
                text.push('"');
                let v: String = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                out.push(Tok::Str(v));
                i = j + 1;
            }
            _ => {
                let mut j = i;
                while j < b.len() && !matches!(b[j], ' ' | '(' | ')' | '[' | ']' | '"') {
                    j += 1;
                }
                out.push(Tok::Word(b[i..j].iter().collect()));
                i = j;
            }
        }
    }
    Ok(out)
}

/// Splits `urn:…:User:name.givenName` into `["name", "givenName"]`.
pub fn split_path(p: &str) -> Vec<String> {
    let p = match p.rfind(':') {
        Some(i) if p.to_ascii_lowercase().starts_with("urn:") => &p[i + 1..],
        _ => p,
    };
    p.split('.').map(str::to_string).collect()
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }
    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.at += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Filter, String> {
        if self.keyword("not") {
            self.at += 1;
            return Ok(Filter::Not(Box::new(self.group()?)));
        }
        if self.peek() == Some(&Tok::Open) {
            return self.group();
        }
        self.comparison()
    }
    fn group(&mut self) -> Result<Filter, String> {
        if self.next() != Some(Tok::Open) {
            return Err("expected (".into());
        }
        let f = self.or()?;
        if self.next() != Some(Tok::Close) {
            return Err("expected )".into());
        }
        Ok(f)
    }
    fn comparison(&mut self) -> Result<Filter, String> {
        let Some(Tok::Word(attr)) = self.next() else {
            return Err("expected an attribute".into());
        };
        if self.peek() == Some(&Tok::LBracket) {
            self.at += 1;
            let inner = self.or()?;
            if self.next() != Some(Tok::RBracket) {
                return Err("expected ]".into());
            }
            return Ok(Filter::ValuePath {
                attr,
                inner: Box::new(inner),
            });
        }
        let path = split_path(&attr);
        let Some(Tok::Word(op)) = self.next() else {
            return Err("expected an operator".into());
        };
        let op = op.to_ascii_lowercase();
        if op == "pr" {
            return Ok(Filter::Present(path));
        }
        if !matches!(
            op.as_str(),
            "eq" | "ne" | "co" | "sw" | "ew" | "gt" | "ge" | "lt" | "le"
        ) {
            return Err(format!("unknown operator {op:?}"));
        }
        let value = match self.next() {
            Some(Tok::Str(s)) => Value::String(s),
            Some(Tok::Word(w)) => match w.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                n => serde_json::from_str::<serde_json::Number>(n)
                    .map(Value::Number)
                    .map_err(|_| format!("bad value {n:?}"))?,
            },
            _ => return Err("expected a value".into()),
        };
        Ok(Filter::Cmp { path, op, value })
    }
}

pub fn parse(s: &str) -> Result<Filter, String> {
    let mut p = Parser {
        toks: lex(s)?,
        at: 0,
    };
    let f = p.or()?;
    if p.at != p.toks.len() {
        return Err("unexpected text after the filter".into());
    }
    Ok(f)
}

/// The object's member named `k`, case-insensitively.
pub fn get_ci<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(k))
        .map(|(_, v)| v)
}

/// Every value at `path`, flattening multi-valued attributes.
fn values<'a>(v: &'a Value, path: &[String]) -> Vec<&'a Value> {
    let Some((first, rest)) = path.split_first() else {
        return match v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
    };
    match v {
        Value::Array(a) => a.iter().flat_map(|e| values(e, path)).collect(),
        _ => get_ci(v, first)
            .map(|x| values(x, rest))
            .unwrap_or_default(),
    }
}

fn compare(actual: &Value, op: &str, want: &Value, exact: bool) -> bool {
    let fold = |s: &str| {
        if exact {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    match (actual, want) {
        (Value::String(a), Value::String(w)) => {
            let (a, w) = (fold(a), fold(w));
            match op {
                "eq" => a == w,
                "ne" => a != w,
                "co" => a.contains(&w),
                "sw" => a.starts_with(&w),
                "ew" => a.ends_with(&w),
                "gt" => a > w,
                "ge" => a >= w,
                "lt" => a < w,
                "le" => a <= w,
                _ => false,
            }
        }
        (Value::Number(a), Value::Number(w)) => {
            let (a, w) = (a.as_f64().unwrap_or(0.0), w.as_f64().unwrap_or(0.0));
            match op {
                "eq" => a == w,
                "ne" => a != w,
                "gt" => a > w,
                "ge" => a >= w,
                "lt" => a < w,
                "le" => a <= w,
                _ => false,
            }
        }
        (a, w) => match op {
            "eq" => a == w,
            "ne" => a != w,
            _ => false,
        },
    }
}

/// Whether `doc` matches.
pub fn matches(f: &Filter, doc: &Value) -> bool {
    match f {
        Filter::And(a, b) => matches(a, doc) && matches(b, doc),
        Filter::Or(a, b) => matches(a, doc) || matches(b, doc),
        Filter::Not(a) => !matches(a, doc),
        Filter::Present(path) => values(doc, path)
            .iter()
            .any(|v| !v.is_null() && v.as_str() != Some("") && *v != &Value::Array(vec![])),
        Filter::ValuePath { attr, inner } => {
            let path = split_path(attr);
            values(doc, &path).iter().any(|e| matches(inner, e))
        }
        Filter::Cmp { path, op, value } => {
            let exact = path.len() == 1
                && (path[0].eq_ignore_ascii_case("id")
                    || path[0].eq_ignore_ascii_case("externalId"));
            let found = values(doc, path);
            if op == "ne" && found.is_empty() {
                return true;
            }
            found.iter().any(|v| compare(v, op, value, exact))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_okta_and_entra_send() {
        let doc = json!({"id": "AB12", "userName": "Alice@Example.com", "externalId": "x-1",
            "emails": [{"value": "a@example.com", "type": "work", "primary": true}],
            "name": {"givenName": "Alice"}, "active": true});
        for (f, want) in [
            (r#"userName eq "alice@example.com""#, true),
            (r#"USERNAME Eq "ALICE@EXAMPLE.COM""#, true),
            (r#"externalId eq "x-1""#, true),
            (r#"externalId eq "X-1""#, false),
            (r#"id eq "AB12""#, true),
            (r#"id eq "ab12""#, false),
            (
                r#"userName eq "alice@example.com" and externalId eq "x-1""#,
                true,
            ),
            (r#"userName eq "bob" or externalId eq "x-1""#, true),
            (r#"not (userName eq "bob")"#, true),
            (r#"emails[type eq "work" and value co "example"]"#, true),
            (r#"emails.value eq "a@example.com""#, true),
            (r#"name.givenName sw "Al""#, true),
            (r#"title pr"#, false),
            (r#"active eq true"#, true),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "alice@example.com""#,
                true,
            ),
        ] {
            assert_eq!(matches(&parse(f).unwrap(), &doc), want, "{f}");
        }
        for bad in [
            r#"userName eq"#,
            r#"userName zz "x""#,
            r#"(userName eq "x""#,
            "\"x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
