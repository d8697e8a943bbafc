//! Where things are kept: records (sqlx), the stage queues (apalis) and the
//! object store (a local folder, or an S3/R2 bucket).

pub mod doorbell;
pub mod objects;
pub mod patient;
pub mod queue;
pub mod records;
pub use records::limits;
pub mod s3;
#[cfg(test)]
pub(crate) mod testing;
