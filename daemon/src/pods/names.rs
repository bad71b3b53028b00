//! Unique names: a name is reserved for an id while the object is created, released by a guard
//! unless the creation commits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Name → id of every pod and container (one table each).
#[derive(Default, Clone)]
pub struct Names {
    map: Arc<Mutex<HashMap<String, String>>>,
}

/// A reserved name, released on drop unless [`Reservation::commit`]ted.
pub struct Reservation {
    names: Names,
    name: String,
    committed: bool,
}

impl Names {
    /// Reserves `name` for `id`, or returns the id that holds it.
    pub fn reserve(&self, name: &str, id: &str) -> Result<Reservation, String> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = map.get(name) {
            return Err(existing.clone());
        }
        map.insert(name.to_owned(), id.to_owned());
        Ok(Reservation {
            names: self.clone(),
            name: name.to_owned(),
            committed: false,
        })
    }

    /// Records a name loaded at start-up.
    pub fn insert(&self, name: &str, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(name.to_owned(), id.to_owned());
    }

    pub fn release(&self, name: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(name);
    }
}

impl Reservation {
    pub fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.committed {
            self.names.release(&self.name);
        }
    }
}

/// A new random 64-hex-digit id.
pub fn new_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_release_unless_committed() {
        let names = Names::default();
        let r = names.reserve("a", "1").unwrap();
        assert_eq!(names.reserve("a", "2").err().as_deref(), Some("1"));
        drop(r);
        names.reserve("a", "3").unwrap().commit();
        assert_eq!(names.reserve("a", "4").err().as_deref(), Some("3"));
        names.release("a");
        assert!(names.reserve("a", "5").is_ok());
        assert_eq!(new_id().len(), 64);
    }
}
