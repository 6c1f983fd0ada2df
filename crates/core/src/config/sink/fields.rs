//! The keys a kind's options type accepts, read from serde itself, so that
//! no hand-kept list can drift from the struct.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::cell::Cell;
use std::fmt;

/// The field names serde's derive passes to `deserialize_struct` for `T`.
pub fn of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let probe = Probe(Cell::new(&[]));
    let _ = T::deserialize(&probe);
    probe.0.get()
}

struct Probe(Cell<&'static [&'static str]>);

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for &Probe {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0.set(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
        #[serde(rename = "b-b")]
        b: Option<String>,
    }

    #[test]
    fn names_come_from_serde() {
        assert_eq!(super::of::<T>(), ["a", "b-b"]);
    }
}
