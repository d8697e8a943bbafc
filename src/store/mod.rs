//! Where things are kept: records (sqlx), the stage queues (apalis) and the
//! object store (a local folder; S3/R2 later).

pub mod objects;
pub mod queue;
pub mod records;
