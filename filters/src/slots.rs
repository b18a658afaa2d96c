//! [`Slots`]: a small map from a type to one value of it, so each filter keeps its own state
//! (per request in [`crate::RequestCtx`], per config in [`crate::Live`]) without a field in a
//! shared struct. A handful of entries at most, so a vector scanned by `TypeId` beats a hash map.

use std::any::{Any, TypeId};

/// A typed slot map. Values must be `Send + Sync` so the holder can move between threads.
#[derive(Default)]
pub struct Slots {
    entries: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
}

impl Slots {
    /// Stores `value`, replacing any earlier value of its type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        match self.entries.iter_mut().find(|(t, _)| *t == id) {
            Some(entry) => entry.1 = Box::new(value),
            None => self.entries.push((id, Box::new(value))),
        }
    }

    /// The value of type `T`, if one was stored.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_ref())
    }

    /// The value of type `T`, mutably.
    pub fn get_mut<T: Any + Send + Sync>(&mut self) -> Option<&mut T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter_mut()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_mut())
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Any + Send + Sync>(&mut self) -> Option<T> {
        let id = TypeId::of::<T>();
        let index = self.entries.iter().position(|(t, _)| *t == id)?;
        self.entries.swap_remove(index).1.downcast().ok().map(|b| *b)
    }
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slots({} entries)", self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type() {
        let mut slots = Slots::default();
        slots.insert(3u32);
        slots.insert("text");
        slots.insert(4u32);
        assert_eq!(slots.get::<u32>(), Some(&4));
        *slots.get_mut::<&str>().expect("stored") = "changed";
        assert_eq!(slots.remove::<&str>(), Some("changed"));
        assert_eq!(slots.get::<&str>(), None);
        assert_eq!(slots.get::<u64>(), None);
    }
}
