//! How a video is cut into chunks for TikTok's FILE_UPLOAD (Media Transfer
//! Guide, spec section 1.3):
//! - under 5 MB: one chunk, `chunk_size == video_size`;
//! - otherwise chunks of 5–64 MB, `total_chunk_count = floor(size / chunk_size)`,
//!   and the last chunk takes the remainder (so it may reach 128 MB);
//! - 1 to 1,000 chunks, sent in order, each with `Content-Range: bytes a-b/total`.
//!
//! "MB" is ambiguous in the guide, so the bounds are the safe reading of both:
//! at least 5 MiB (5·2²⁰) and at most 64·10⁶ bytes per chunk, 128·10⁶ for the last.

/// Smallest chunk (and the size under which a video goes whole).
pub const MIN_CHUNK: u64 = 5 * 1024 * 1024;
/// Largest regular chunk.
pub const MAX_CHUNK: u64 = 64_000_000;
/// Largest last chunk.
pub const MAX_LAST_CHUNK: u64 = 128_000_000;
pub const MAX_CHUNKS: u64 = 1000;
/// Largest video TikTok accepts (4 GB; read as GiB, the larger).
pub const MAX_VIDEO: u64 = 4 * 1024 * 1024 * 1024;
/// The chunk size used when a choice exists: the guide's own example size,
/// well inside the bounds, so the last chunk stays under 20 MB.
pub const PREFERRED_CHUNK: u64 = 10_000_000;

// A video sent whole stays within the largest chunk.
const _: () = assert!(2 * PREFERRED_CHUNK <= MAX_CHUNK);

/// Why a video cannot be uploaded in chunks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkPlanError {
    #[error("the video is empty")]
    Empty,
    #[error("the video has {0} bytes; TikTok accepts at most {MAX_VIDEO}")]
    TooLarge(u64),
}

/// The values sent in `source_info` and the byte ranges to PUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    pub video_size: u64,
    pub chunk_size: u64,
    pub total_chunk_count: u64,
}

impl ChunkPlan {
    pub fn new(video_size: u64) -> Result<Self, ChunkPlanError> {
        if video_size == 0 {
            return Err(ChunkPlanError::Empty);
        }
        if video_size > MAX_VIDEO {
            return Err(ChunkPlanError::TooLarge(video_size));
        }
        // Small enough to go whole: a single chunk of exactly the video.
        let chunk_size = if video_size < 2 * PREFERRED_CHUNK { video_size } else { PREFERRED_CHUNK };
        Ok(Self { video_size, chunk_size, total_chunk_count: video_size / chunk_size })
    }

    /// The inclusive byte range of chunk `index` (0-based).
    pub fn range(&self, index: u64) -> (u64, u64) {
        let first = index * self.chunk_size;
        let last = if index + 1 == self.total_chunk_count { self.video_size - 1 } else { first + self.chunk_size - 1 };
        (first, last)
    }

    /// Every chunk's inclusive byte range, in the order they must be sent.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        (0..self.total_chunk_count).map(|i| self.range(i))
    }

    /// The `Content-Range` header of chunk `index`.
    pub fn content_range(&self, index: u64) -> String {
        let (first, last) = self.range(index);
        format!("bytes {first}-{last}/{}", self.video_size)
    }

    /// The chunk that starts at `offset` (after a 416 tells how much arrived).
    pub fn chunk_at(&self, offset: u64) -> Option<u64> {
        (offset.is_multiple_of(self.chunk_size) && offset < self.video_size)
            .then(|| (offset / self.chunk_size).min(self.total_chunk_count - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    /// Checks every rule of the guide on a plan.
    fn assert_valid(p: &ChunkPlan) {
        assert!((1..=MAX_CHUNKS).contains(&p.total_chunk_count), "{p:?}");
        assert_eq!(p.total_chunk_count, p.video_size / p.chunk_size, "count is floor(size / chunk)");
        let ranges: Vec<_> = p.ranges().collect();
        assert_eq!(ranges.first().unwrap().0, 0);
        assert_eq!(ranges.last().unwrap().1, p.video_size - 1, "the chunks cover the whole video");
        assert!(ranges.windows(2).all(|w| w[1].0 == w[0].1 + 1), "no gap, no overlap");
        for (i, (a, b)) in ranges.iter().enumerate() {
            let len = b - a + 1;
            let last = i + 1 == ranges.len();
            if p.video_size < MIN_CHUNK {
                assert_eq!(len, p.video_size);
            } else if last {
                assert!(len >= p.chunk_size && len <= MAX_LAST_CHUNK, "last chunk {len} of {p:?}");
            } else {
                assert!((MIN_CHUNK..=MAX_CHUNK).contains(&len), "chunk {i} is {len} of {p:?}");
            }
        }
    }

    #[test]
    fn edges_of_the_media_transfer_rules() {
        for size in [1, 5 * MIB - 1, 5 * MIB, 64_000_000, 64_000_000 + 1, 50_000_123, MAX_VIDEO] {
            assert_valid(&ChunkPlan::new(size).unwrap());
        }
        let one_byte = ChunkPlan::new(1).unwrap();
        assert_eq!((one_byte.chunk_size, one_byte.total_chunk_count), (1, 1));
        let just_under = ChunkPlan::new(5 * MIB - 1).unwrap();
        assert_eq!((just_under.chunk_size, just_under.total_chunk_count), (5 * MIB - 1, 1));
        assert_eq!(ChunkPlan::new(5 * MIB).unwrap().total_chunk_count, 1);
        assert_eq!(ChunkPlan::new(64_000_000).unwrap().total_chunk_count, 6);
        assert_eq!(ChunkPlan::new(64_000_001).unwrap().content_range(5), "bytes 50000000-64000000/64000001");
    }

    #[test]
    fn the_guides_worked_example() {
        let p = ChunkPlan::new(50_000_123).unwrap();
        assert_eq!((p.chunk_size, p.total_chunk_count), (10_000_000, 5));
        let (a, b) = p.range(4);
        assert_eq!(b - a + 1, 10_000_123);
        assert_eq!(p.content_range(4), "bytes 40000000-50000122/50000123");
    }

    #[test]
    fn no_size_breaks_the_rules() {
        // Every size around the boundaries, and a sweep across the whole range.
        let mut sizes: Vec<u64> = (0..2000u64).map(|i| 1 + i * (MAX_VIDEO / 2000)).collect();
        for edge in [MIN_CHUNK, PREFERRED_CHUNK, 2 * PREFERRED_CHUNK, MAX_CHUNK, MAX_VIDEO] {
            sizes.extend((edge.saturating_sub(3)..=edge + 3).filter(|s| (1..=MAX_VIDEO).contains(s)));
        }
        for size in sizes {
            assert_valid(&ChunkPlan::new(size).unwrap());
        }
    }

    #[test]
    fn empty_and_oversized_videos_are_refused() {
        assert_eq!(ChunkPlan::new(0), Err(ChunkPlanError::Empty));
        assert_eq!(ChunkPlan::new(MAX_VIDEO + 1), Err(ChunkPlanError::TooLarge(MAX_VIDEO + 1)));
    }

    #[test]
    fn a_reported_offset_finds_the_chunk_to_resume_with() {
        let p = ChunkPlan::new(50_000_123).unwrap();
        assert_eq!(p.chunk_at(0), Some(0));
        assert_eq!(p.chunk_at(30_000_000), Some(3));
        assert_eq!(p.chunk_at(30_000_001), None, "not a chunk boundary");
        assert_eq!(p.chunk_at(50_000_123), None, "nothing left");
    }
}
