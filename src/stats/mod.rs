//! Statistics over blocks of rows that the Python layer (`slaf.pp`) streams, where numpy has no
//! fast form: per-row selections that would otherwise need a sort of the whole block.

mod top;

pub use top::top_sums;
