//! Storage quotas per repository pattern. (Skeleton; issue 23's quota work fills it.)

/// The quotas in force.
pub struct Quotas {}

impl Quotas {
    pub fn new() -> Quotas {
        Quotas {}
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas::new()
    }
}
