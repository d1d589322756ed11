//! SCIM PATCH (RFC 7644 §3.5.2) over a resource as JSON, in the shapes
//! Okta and Entra ID send: `op` in any case (`Replace`), with or without
//! `path`, a path-less value whose keys may themselves be paths
//! (`"name.givenName"`), `members[value eq "…"]` removals, `remove` on
//! `members` with a list of values. The result is validated afterwards by
//! the resource's own rules (`active: "False"` is read there).

use super::filter::{self, Filter, split_path};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// Why a PATCH cannot apply: (scimType, detail).
pub type PatchError = (&'static str, String);

fn invalid(detail: impl Into<String>) -> PatchError {
    ("invalidValue", detail.into())
}

/// A parsed path: `attr`, `attr.sub`, `attr[filter]`, `attr[filter].sub`.
struct Target {
    attr: String,
    filter: Option<Filter>,
    sub: Option<String>,
}

fn parse_path(p: &str) -> Result<Target, PatchError> {
    let bad = |why: &str| ("invalidPath", format!("{p:?}: {why}"));
    if let Some(open) = p.find('[') {
        let close = p.rfind(']').ok_or_else(|| bad("no ]"))?;
        let attr = split_path(&p[..open]).join(".");
        let f = filter::parse(&p[open + 1..close]).map_err(|e| ("invalidFilter", e))?;
        let rest = &p[close + 1..];
        let sub = match rest.strip_prefix('.') {
            Some(s) if !s.is_empty() => Some(s.to_string()),
            None if rest.is_empty() => None,
            _ => return Err(bad("text after ]")),
        };
        return Ok(Target {
            attr,
            filter: Some(f),
            sub,
        });
    }
    let mut parts = split_path(p);
    if parts.is_empty() || parts.iter().any(String::is_empty) || parts.len() > 2 {
        return Err(bad("not an attribute path"));
    }
    let sub = (parts.len() == 2).then(|| parts.remove(1));
    Ok(Target {
        attr: parts.remove(0),
        filter: None,
        sub,
    })
}

/// The key in `obj` naming `k` case-insensitively, or `k` itself.
fn key(obj: &Map<String, Value>, k: &str) -> String {
    obj.keys()
        .find(|x| x.eq_ignore_ascii_case(k))
        .cloned()
        .unwrap_or_else(|| k.to_string())
}

/// Applies every operation of a PatchOp body to `doc`.
pub fn apply(doc: &mut Value, body: &Value) -> Result<(), PatchError> {
    let ops = filter::get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("Operations is required"))?;
    for o in ops {
        let op = match filter::get_ci(o, "op").and_then(Value::as_str) {
            Some(s) if s.eq_ignore_ascii_case("add") => Op::Add,
            Some(s) if s.eq_ignore_ascii_case("replace") => Op::Replace,
            Some(s) if s.eq_ignore_ascii_case("remove") => Op::Remove,
            _ => return Err(invalid("op must be add, replace or remove")),
        };
        let value = filter::get_ci(o, "value").cloned();
        match filter::get_ci(o, "path").and_then(Value::as_str) {
            Some(p) => at_path(doc, op, &parse_path(p)?, value)?,
            None => {
                if op == Op::Remove {
                    return Err(("noTarget", "remove needs a path".into()));
                }
                let Some(Value::Object(v)) = value else {
                    return Err(invalid("a PATCH without a path takes an object value"));
                };
                for (k, v) in v {
                    at_path(doc, op, &parse_path(&k)?, Some(v))?;
                }
            }
        }
    }
    Ok(())
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (filter::get_ci(a, "value"), filter::get_ci(b, "value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn at_path(doc: &mut Value, op: Op, t: &Target, value: Option<Value>) -> Result<(), PatchError> {
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| invalid("the resource is not an object"))?;
    let k = key(obj, &t.attr);
    if op != Op::Remove && value.is_none() {
        return Err(invalid("add and replace need a value"));
    }
    if let Some(f) = &t.filter {
        let Some(Value::Array(items)) = obj.get_mut(&k) else {
            return if op == Op::Remove {
                Ok(())
            } else {
                Err(("noTarget", format!("{} has no values", t.attr)))
            };
        };
        match (op, &t.sub) {
            (Op::Remove, None) => items.retain(|e| !filter::matches(f, e)),
            (Op::Remove, Some(sub)) => {
                for e in items.iter_mut().filter(|e| filter::matches(f, e)) {
                    if let Some(m) = e.as_object_mut() {
                        let sk = key(m, sub);
                        m.remove(&sk);
                    }
                }
            }
            (_, sub) => {
                let v = value.unwrap_or(Value::Null);
                let mut hit = false;
                for e in items.iter_mut().filter(|e| filter::matches(f, e)) {
                    hit = true;
                    match (sub, e.as_object_mut()) {
                        (Some(sub), Some(m)) => {
                            let sk = key(m, sub);
                            m.insert(sk, v.clone());
                        }
                        (None, Some(m)) => match (&v, op) {
                            (Value::Object(new), Op::Add) => {
                                for (nk, nv) in new {
                                    let nk2 = key(m, nk);
                                    m.insert(nk2, nv.clone());
                                }
                            }
                            _ => *e = v.clone(),
                        },
                        _ => *e = v.clone(),
                    }
                }
                if !hit {
                    return Err(("noTarget", format!("no value of {} matches", t.attr)));
                }
            }
        }
        return Ok(());
    }
    if let Some(sub) = &t.sub {
        if op == Op::Remove {
            if let Some(Value::Object(m)) = obj.get_mut(&k) {
                let sk = key(m, sub);
                m.remove(&sk);
            }
            return Ok(());
        }
        let entry = obj.entry(k).or_insert_with(|| Value::Object(Map::new()));
        let m = entry
            .as_object_mut()
            .ok_or_else(|| invalid(format!("{} is not complex", t.attr)))?;
        let sk = key(m, sub);
        m.insert(sk, value.unwrap_or(Value::Null));
        return Ok(());
    }
    match op {
        Op::Remove => match (value, obj.get_mut(&k)) {
            // Entra: remove members with a list of the ones to drop.
            (Some(Value::Array(drop)), Some(Value::Array(items))) => {
                items.retain(|e| !drop.iter().any(|d| same_value(e, d)));
            }
            _ => {
                obj.remove(&k);
            }
        },
        Op::Replace => {
            let v = value.unwrap_or(Value::Null);
            match (obj.get_mut(&k), v) {
                (Some(Value::Object(m)), Value::Object(new)) => {
                    // Replacing a complex attribute replaces it whole.
                    *m = new;
                }
                (_, v) => {
                    obj.insert(k, v);
                }
            }
        }
        Op::Add => {
            let v = value.unwrap_or(Value::Null);
            match (obj.get_mut(&k), v) {
                (Some(Value::Array(items)), Value::Array(new)) => {
                    for n in new {
                        if !items.iter().any(|e| same_value(e, &n)) {
                            items.push(n);
                        }
                    }
                }
                (Some(Value::Object(m)), Value::Object(new)) => {
                    for (nk, nv) in new {
                        let nk2 = key(m, &nk);
                        m.insert(nk2, nv);
                    }
                }
                (_, v) => {
                    obj.insert(k, v);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(doc: Value, ops: Value) -> Value {
        let mut d = doc;
        apply(&mut d, &json!({ "Operations": ops })).unwrap();
        d
    }

    #[test]
    fn okta_and_entra_shapes() {
        let base = json!({"userName": "a", "active": true, "name": {"givenName": "A"},
            "emails": [{"value": "a@x", "type": "work"}],
            "members": [{"value": "1"}, {"value": "2"}, {"value": "3"}]});
        // Okta: path-less replace.
        let d = patch(
            base.clone(),
            json!([{"op": "replace", "value": {"active": false}}]),
        );
        assert_eq!(d["active"], json!(false));
        // Entra: capitalised op, path, the string "False".
        let d = patch(
            base.clone(),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        );
        assert_eq!(d["active"], json!("False"));
        // Entra: path-less keys that are paths.
        let d = patch(
            base.clone(),
            json!([{"op": "Add", "value": {"name.familyName": "B", "displayName": "A B"}}]),
        );
        assert_eq!(d["name"], json!({"givenName": "A", "familyName": "B"}));
        assert_eq!(d["displayName"], json!("A B"));
        // Value path with a sub-attribute.
        let d = patch(
            base.clone(),
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@x"}]),
        );
        assert_eq!(d["emails"][0]["value"], json!("b@x"));
        // Okta: members[value eq "…"] removal; Entra: remove with a list.
        let d = patch(
            base.clone(),
            json!([{"op": "remove", "path": "members[value eq \"2\"]"}]),
        );
        assert_eq!(d["members"], json!([{"value": "1"}, {"value": "3"}]));
        let d = patch(
            base.clone(),
            json!([{"op": "Remove", "path": "members", "value": [{"value": "1"}, {"value": "3"}]}]),
        );
        assert_eq!(d["members"], json!([{"value": "2"}]));
        let d = patch(
            base.clone(),
            json!([{"op": "add", "path": "members", "value": [{"value": "2"}, {"value": "4"}]}]),
        );
        assert_eq!(d["members"].as_array().unwrap().len(), 4);
        let d = patch(base.clone(), json!([{"op": "remove", "path": "members"}]));
        assert!(d.get("members").is_none());
        let mut d = base;
        assert!(apply(&mut d, &json!({"Operations": [{"op": "remove"}]})).is_err());
        assert!(
            apply(
                &mut d,
                &json!({"Operations": [{"op": "move", "path": "a"}]})
            )
            .is_err()
        );
    }
}
