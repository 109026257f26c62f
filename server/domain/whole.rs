//! Whole numbers as JSON Schema reads them: `3` and `3.0` are both the
//! integer 3 (the OpenAPI document says `integer`, and a client or a
//! generator may write either). serde's integer types refuse `3.0`; fields
//! that use [`number`] (or [`optional`]) take it, and refuse a fraction or a
//! number outside the field's type with a message that says so.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Error, Visitor};
use serde::Deserializer;

/// Reads a whole number into `T` (`3`, `3.0` or `-3e2`); a fraction, or a
/// value `T` cannot hold, is an error.
pub fn number<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    d.deserialize_any(Whole(PhantomData))
}

/// [`number`] for an optional field: `null` is `None`.
pub fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    d.deserialize_option(Maybe(PhantomData))
}

struct Whole<T>(PhantomData<T>);

impl<T: TryFrom<i128>> Whole<T> {
    fn fit<E: Error>(v: i128) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
    }
}

impl<T: TryFrom<i128>> Visitor<'_> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number")
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<T, E> {
        Self::fit(i128::from(v))
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<T, E> {
        Self::fit(i128::from(v))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<T, E> {
        // JSON integers within 64 bits arrive as integers; a float is
        // either written with a fraction part (`3.0`) or a literal beyond
        // 64 bits that the parser rounded. Past 2^53 a float no longer
        // holds every whole number exactly, so it is refused rather than
        // read as a neighbour of what was sent.
        if v.fract() != 0.0 || !v.is_finite() || v.abs() > 2f64.powi(53) {
            return Err(E::custom(format!("{v} is not a whole number in range")));
        }
        Self::fit(v as i128)
    }
}

struct Maybe<T>(PhantomData<T>);

impl<'de, T: TryFrom<i128>> Visitor<'de> for Maybe<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number or null")
    }

    fn visit_none<E: Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        number(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::number")]
        n: i64,
        #[serde(default, deserialize_with = "super::optional")]
        m: Option<u32>,
    }

    fn read(text: &str) -> Result<Body, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn integers_and_whole_floats_are_read() {
        assert_eq!(read(r#"{"n": 3}"#).unwrap().n, 3);
        assert_eq!(read(r#"{"n": 3.0, "m": 7.0}"#).unwrap().m, Some(7));
        assert_eq!(read(r#"{"n": -2e2}"#).unwrap().n, -200);
        assert_eq!(read(r#"{"n": 1, "m": null}"#).unwrap().m, None);
        assert_eq!(read(r#"{"n": 1}"#).unwrap().m, None);
    }

    #[test]
    fn fractions_and_out_of_range_values_are_refused() {
        assert!(read(r#"{"n": 3.5}"#)
            .unwrap_err()
            .contains("not a whole number"));
        let big = read(r#"{"n": 9223372036854775808}"#).unwrap_err();
        assert!(big.contains("out of range"), "{big}");
        assert!(read(r#"{"n": 1, "m": -1}"#)
            .unwrap_err()
            .contains("out of range"));
        assert!(read(r#"{"n": 1e300}"#).is_err());
        // Beyond i64, a literal is parsed as a float that rounds back into
        // range: it is refused, not read as i64::MIN.
        let below = read(r#"{"n": -9223372036854775809}"#).unwrap_err();
        assert!(below.contains("not a whole number in range"), "{below}");
        assert!(read(r#"{"n": "3"}"#)
            .unwrap_err()
            .contains("a whole number"));
    }
}
