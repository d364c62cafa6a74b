//! Reading a parameter object into its struct with a 414 that names the
//! field and says what is wrong with it: missing, of the wrong type, or a
//! key that is not one of the operation's but looks like a misspelling of
//! one. The same messages reach the C library's callers (through
//! `nim_signaling_last_error`), the bindings and the server's replies.

use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::Value;

use super::codes::{Failure, INVALID_PARAM};

/// `params` as a `T`, or a 414 naming the field at fault.
///
/// A key that is not one of `T`'s is ignored (NIM apps send keys of
/// their own, and may reuse one object for several operations: `others`
/// lists the keys of every operation), unless it looks like a misspelling
/// of one of `T`'s (see [`misspelling_of`]): `acount` for `account`,
/// `channelID` for `channelId`. Those are refused, since the value the app
/// meant to send would otherwise be silently dropped.
pub fn parse<T: DeserializeOwned>(params: &Value, others: &[&str]) -> Result<T, Failure> {
    let known = fields_of::<T>();
    if let Some(obj) = params.as_object() {
        for key in obj.keys() {
            if known.contains(&key.as_str()) || others.contains(&key.as_str()) {
                continue;
            }
            if let Some(meant) = known.iter().find(|k| misspelling_of(key, k)) {
                return Err(bad(format!("unknown key `{key}`: did you mean `{meant}`?")));
            }
        }
    }
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // A missing field is reported at the object itself ("."): serde's
        // text already names it.
        if path == "." || path.is_empty() {
            bad(inner)
        } else {
            bad(format!("`{path}`: {inner}"))
        }
    })
}

fn bad(msg: String) -> Failure {
    Failure::new(INVALID_PARAM, msg)
}

/// Whether `key` reads as a slip for `known`: the same but for case, or,
/// for keys long enough that two edits do not make a different word, at
/// most two edits (letters added, dropped, changed or swapped) away.
pub fn misspelling_of(key: &str, known: &str) -> bool {
    if key.eq_ignore_ascii_case(known) {
        return true;
    }
    key.len().min(known.len()) >= 5
        && strsim::damerau_levenshtein(&key.to_ascii_lowercase(), &known.to_ascii_lowercase()) <= 2
}

/// The keys a struct's `Deserialize` accepts, as its derive lists them
/// (renames applied). Read by offering the derive a deserializer that
/// records the list it is asked for and gives nothing else.
pub fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldLister(&mut fields));
    fields
}

struct FieldLister<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldLister<'_> {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("only the field list was asked for"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{CreateParams, InviteParams};
    use serde_json::json;

    fn message<T: DeserializeOwned>(v: Value) -> String {
        let f = parse::<T>(&v, &[]).err().expect("refused");
        assert_eq!(f.code, INVALID_PARAM);
        f.message
    }

    #[test]
    fn the_field_lists_come_from_the_derive() {
        assert_eq!(fields_of::<CreateParams>(), ["type", "channelName", "ext"]);
        assert!(fields_of::<InviteParams>().contains(&"requestId"));
    }

    #[test]
    fn each_kind_of_mistake_names_its_field() {
        let invite = json!({"channelId": "c", "account": "bob", "requestId": "r"});
        assert!(parse::<InviteParams>(&invite, &[]).is_ok());
        let with = |k: &str, v: Value| {
            let mut p = invite.clone();
            p[k] = v;
            p
        };
        let without = |k: &str| {
            let mut p = invite.clone();
            p.as_object_mut().unwrap().remove(k);
            p
        };
        assert_eq!(
            message::<InviteParams>(without("requestId")),
            "missing field `requestId`"
        );
        let m = message::<InviteParams>(with("account", json!(7)));
        assert!(m.starts_with("`account`: invalid type: integer `7`"), "{m}");
        let m = message::<InviteParams>(with("pushInfo", json!({"needPush": "yes"})));
        assert!(m.starts_with("`pushInfo"), "{m}");
        let mut acount = without("account");
        acount["acount"] = json!("bob");
        assert_eq!(
            message::<InviteParams>(acount),
            "unknown key `acount`: did you mean `account`?"
        );
        assert_eq!(
            message::<InviteParams>(with("channelID", json!("c"))),
            "unknown key `channelID`: did you mean `channelId`?"
        );
        // Keys of an app's own, not near any of ours, pass.
        assert!(parse::<InviteParams>(&with("nertcChannelName", json!("x")), &[]).is_ok());
        assert!(parse::<CreateParams>(&json!({"type": 1, "tip": 2}), &[]).is_ok());
        // A key of another operation is not a misspelling.
        let reused = json!({"type": 1, "accounts": ["bob"]});
        assert!(parse::<CreateParams>(&reused, &["accounts"]).is_ok());
    }

    #[test]
    fn short_keys_are_misspellings_only_by_case() {
        assert!(misspelling_of("EXT", "ext"));
        assert!(!misspelling_of("exp", "ext"));
        assert!(misspelling_of("offlineEnable", "offlineEnabled"));
        assert!(misspelling_of("reqeustId", "requestId"));
        assert!(!misspelling_of("channelName", "channelId"));
    }
}
