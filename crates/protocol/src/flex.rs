//! Deserializers for fields where serde's derive does not take exactly the
//! JSON types we accept: lenient where the seed itself sends several types
//! for one field, strict where serde would be lenient.

use serde::de::DeserializeOwned;
use serde::{de::Error, Deserialize, Deserializer};
use serde_json::Value;

/// `true`/`false`, or a number (0 is false). The seed's call example sends
/// `needPush: checked ? 1 : 0`.
pub fn bool_or_num<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::Number(n) => Ok(n.as_f64().map(|f| f != 0.0).unwrap_or(false)),
        Value::Null => Ok(false),
        other => Err(D::Error::custom(format!("expected a boolean, got {other}"))),
    }
}

/// Optional boolean with the same leniency.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    bool_or_num(d).map(Some)
}

/// A uid: a number or a numeric string (the seed shows both). Anything
/// not greater than zero means "let the server assign one", so it maps to None.
pub fn opt_uid<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let n: f64 = match Value::deserialize(d)? {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| D::Error::custom(format!("uid must be numeric, got \"{s}\"")))?,
        other => {
            return Err(D::Error::custom(format!(
                "uid must be a number, got {other}"
            )))
        }
    };
    if n.fract() != 0.0 || n > u64::MAX as f64 {
        return Err(D::Error::custom("uid must be a whole number"));
    }
    Ok(if n > 0.0 { Some(n as u64) } else { None })
}

/// An optional JSON object read as `T`. Serde's derive would also read a
/// struct from an array, field by field in declaration order; an object
/// parameter given as an array is a mistake worth a 414.
pub fn opt_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v @ Value::Object(_) => T::deserialize(v).map(Some).map_err(D::Error::custom),
        other => {
            // Named as the wire names it: PushInfo -> "pushInfo".
            let ty = std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("value");
            let mut name = ty.to_string();
            if let Some(first) = name.get_mut(..1) {
                first.make_ascii_lowercase();
            }
            Err(D::Error::custom(format!(
                "{name} must be a JSON object, got {other}"
            )))
        }
    }
}
