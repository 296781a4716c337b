//! Canonical JSON as the TUF specification defines it (the OLPC form), through `olpc-cjson`.

use serde::Serialize;

use super::TufError;

/// The canonical bytes of `value`: sorted keys, no insignificant whitespace, no floats.
pub fn canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, TufError> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value.serialize(&mut ser).map_err(|e| TufError::Malformed(format!("not canonicalizable: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_compact() {
        let v = serde_json::json!({"b": 1, "a": [true, null, "x\"y"], "c": {"z": 0, "y": -2}});
        assert_eq!(
            String::from_utf8(canonical(&v).unwrap()).unwrap(),
            r#"{"a":[true,null,"x\"y"],"b":1,"c":{"y":-2,"z":0}}"#
        );
        assert!(canonical(&serde_json::json!({"f": 1.5})).is_err());
    }
}
