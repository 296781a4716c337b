//! The keys of [`Config`](super::Config), learned from its own `Deserialize` implementation, so the list of keys (and
//! with it the `WHARF_*` variables, the README check and `wharf config check`) cannot drift from the structs.
//!
//! A probe deserializer walks one path at a time: it offers the struct a map with the single key at that path, and
//! records which kind of value the field's type then asks for (a bool, an integer, a string, a duration, a table).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// What a key holds, as its type asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Integer,
    Float,
    String,
    /// A list of strings (comma-separated in a variable).
    Strings,
    /// A value the type reads itself from a string or a number: durations.
    Any,
    /// A section: `[name]`.
    Table,
    /// An array of tables (`[[name]]`): not settable from a variable.
    Tables,
}

/// One key: `section.name`, or `name` at the top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub section: Option<&'static str>,
    pub name: &'static str,
    pub kind: Kind,
}

impl Key {
    /// The TOML path, `limits.max_blob_size`.
    pub fn path(&self) -> String {
        match self.section {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.to_owned(),
        }
    }

    /// The key's variable, derived from its path: `limits.max_blob_size` is `WHARF_LIMITS_MAX_BLOB_SIZE`.
    pub fn variable(&self) -> String {
        format!("WHARF_{}", self.path().replace('.', "_").to_ascii_uppercase())
    }

    /// Whether a variable can set it: scalars and lists of strings, not sections or arrays of tables.
    pub fn settable(&self) -> bool {
        !matches!(self.kind, Kind::Table | Kind::Tables)
    }
}

/// Every key of `T` and of its sections (one level deep, as the file has), in declaration order. The sections
/// themselves are listed too, with [`Kind::Table`].
pub fn keys<'de, T: Deserialize<'de>>() -> Vec<Key> {
    let Found::Fields(top) = probe::<T>(&[]) else { return Vec::new() };
    let mut out = Vec::new();
    for (i, name) in top.iter().enumerate() {
        match probe::<T>(&[i]) {
            Found::Kind(kind) => out.push(Key { section: None, name, kind }),
            Found::Fields(fields) => {
                out.push(Key { section: None, name, kind: Kind::Table });
                for (j, key) in fields.iter().enumerate() {
                    let kind = match probe::<T>(&[i, j]) {
                        Found::Kind(kind) => kind,
                        Found::Fields(_) => Kind::Table,
                    };
                    out.push(Key { section: Some(name), name: key, kind });
                }
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Found {
    Kind(Kind),
    Fields(&'static [&'static str]),
}

fn probe<'de, T: Deserialize<'de>>(path: &[usize]) -> Found {
    let found = Cell::new(None);
    // The probe always ends the walk with `Stop` once it has recorded what it found.
    let _ = T::deserialize(Probe { path, found: &found });
    found.get().unwrap_or(Found::Kind(Kind::Any))
}

/// Ends a probe's walk; carries nothing.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe done")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

struct Probe<'a> {
    path: &'a [usize],
    found: &'a Cell<Option<Found>>,
}

impl Probe<'_> {
    fn record<V>(&self, kind: Kind) -> Result<V, Stop> {
        self.found.set(Some(Found::Kind(kind)));
        Err(Stop)
    }
}

macro_rules! record {
    ($($method:ident => $kind:ident),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            self.record(Kind::$kind)
        })*
    };
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    record! {
        deserialize_any => Any, deserialize_bool => Bool,
        deserialize_i8 => Integer, deserialize_i16 => Integer, deserialize_i32 => Integer, deserialize_i64 => Integer,
        deserialize_u8 => Integer, deserialize_u16 => Integer, deserialize_u32 => Integer, deserialize_u64 => Integer,
        deserialize_f32 => Float, deserialize_f64 => Float,
        deserialize_char => String, deserialize_str => String, deserialize_string => String,
        deserialize_bytes => String, deserialize_byte_buf => String, deserialize_identifier => String,
        deserialize_unit => Any, deserialize_map => Tables, deserialize_ignored_any => Any,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, _: V) -> Result<V::Value, Stop> {
        self.record(Kind::Any)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.record(Kind::String)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        let element = Cell::new(None);
        let _ = visitor.visit_seq(OneElement { probe: Some(Probe { path: &[], found: &element }) });
        match element.get() {
            Some(Found::Fields(_)) => self.record(Kind::Tables),
            _ => self.record(Kind::Strings),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Stop> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, _: usize, v: V) -> Result<V::Value, Stop> {
        self.deserialize_seq(v)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        let Some((&i, rest)) = self.path.split_first() else {
            self.found.set(Some(Found::Fields(fields)));
            return Err(Stop);
        };
        let key = fields.get(i).copied().ok_or(Stop)?;
        visitor.visit_map(OneKey { key: Some(key), value: Some(Probe { path: rest, found: self.found }) })
    }
}

/// A map with one key, whose value is probed.
struct OneKey<'a> {
    key: Option<&'static str>,
    value: Option<Probe<'a>>,
}

impl<'de> MapAccess<'de> for OneKey<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Stop> {
        match self.key.take() {
            Some(key) => seed.deserialize(IntoDeserializer::<Stop>::into_deserializer(key)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        seed.deserialize(self.value.take().ok_or(Stop)?)
    }
}

/// A sequence with one element, whose kind is probed.
struct OneElement<'a> {
    probe: Option<Probe<'a>>,
}

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Stop> {
        match self.probe.take() {
            Some(p) => seed.deserialize(p).map(Some),
            None => Ok(None),
        }
    }
}
