//! Where things are kept: records (sqlx), the stage queues (apalis) and the
//! object store (a local folder, or an S3/R2 bucket).

pub mod objects;
pub mod queue;
pub mod records;
pub mod s3;
