//! Apache support: `opsd apache doctor`, which checks a server for the known child-crash recipe.

pub mod doctor;
