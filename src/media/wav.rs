//! Just enough of WAV to join per-sentence narration files without ffmpeg:
//! espeak-ng writes 16-bit PCM, and joining is a byte copy with silence between.

use std::path::Path;

/// Why a WAV file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("not a PCM WAV file: {0}")]
    Format(&'static str),
    #[error("narration parts differ in format ({0:?} vs {1:?})")]
    Mismatch(PcmFormat, PcmFormat),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The sample format of a PCM stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    pub channels: u16,
    pub sample_rate: u32,
    pub bits_per_sample: u16,
}

impl PcmFormat {
    fn bytes_per_second(&self) -> u32 {
        self.sample_rate * u32::from(self.channels) * u32::from(self.bits_per_sample / 8)
    }
    fn block_align(&self) -> usize {
        usize::from(self.channels) * usize::from(self.bits_per_sample / 8)
    }
}

/// Decoded PCM samples as raw little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    pub format: PcmFormat,
    pub data: Vec<u8>,
}

impl Pcm {
    pub fn duration_s(&self) -> f64 {
        self.data.len() as f64 / f64::from(self.format.bytes_per_second())
    }

    /// Reads the `fmt ` and `data` chunks of a RIFF/WAVE file.
    pub fn parse(bytes: &[u8]) -> Result<Self, WavError> {
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err(WavError::Format("missing RIFF/WAVE header"));
        }
        let mut pos = 12;
        let mut format = None;
        while pos + 8 <= bytes.len() {
            let id = &bytes[pos..pos + 4];
            let declared = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
            let body = pos + 8;
            // Streamed WAVs (espeak-ng to a pipe) declare 0x7fffffff; trust the file end.
            let len = declared.min(bytes.len() - body);
            match id {
                b"fmt " if len >= 16 => {
                    let b = &bytes[body..];
                    let tag = u16::from_le_bytes([b[0], b[1]]);
                    if tag != 1 {
                        return Err(WavError::Format("not PCM"));
                    }
                    format = Some(PcmFormat {
                        channels: u16::from_le_bytes([b[2], b[3]]),
                        sample_rate: u32::from_le_bytes(b[4..8].try_into().unwrap()),
                        bits_per_sample: u16::from_le_bytes([b[14], b[15]]),
                    });
                }
                b"data" => {
                    let format = format.ok_or(WavError::Format("data before fmt"))?;
                    if format.bits_per_sample != 16 || format.channels == 0 || format.sample_rate == 0 {
                        return Err(WavError::Format("only 16-bit PCM is supported"));
                    }
                    let usable = len - len % format.block_align();
                    return Ok(Pcm { format, data: bytes[body..body + usable].to_vec() });
                }
                _ => {}
            }
            pos = body + len + (len & 1);
        }
        Err(WavError::Format("no data chunk"))
    }

    pub async fn read(path: &Path) -> Result<Self, WavError> {
        Self::parse(&tokio::fs::read(path).await?)
    }

    /// Appends `seconds` of silence.
    pub fn push_silence(&mut self, seconds: f64) {
        let frames = (seconds * f64::from(self.format.sample_rate)).round() as usize;
        self.data.resize(self.data.len() + frames * self.format.block_align(), 0);
    }

    /// Appends `other`, which must have the same format.
    pub fn append(&mut self, other: &Pcm) -> Result<(), WavError> {
        if other.format != self.format {
            return Err(WavError::Mismatch(self.format, other.format));
        }
        self.data.extend_from_slice(&other.data);
        Ok(())
    }

    /// Joins `parts` (all of one format) with `gap_s` of silence after each, and
    /// returns where each part starts, in seconds. `None` when there are no parts.
    pub fn concat<'a>(
        parts: impl IntoIterator<Item = &'a Pcm>,
        gap_s: f64,
    ) -> Result<Option<(Pcm, Vec<f64>)>, WavError> {
        let mut joined: Option<Pcm> = None;
        let mut offsets = Vec::new();
        for part in parts {
            match joined.as_mut() {
                None => {
                    offsets.push(0.0);
                    joined = Some(part.clone());
                }
                Some(all) => {
                    offsets.push(all.duration_s());
                    all.append(part)?;
                }
            }
            joined.as_mut().expect("set above").push_silence(gap_s);
        }
        Ok(joined.map(|j| (j, offsets)))
    }

    /// A complete WAV file.
    pub fn to_wav_bytes(&self) -> Vec<u8> {
        let f = &self.format;
        let mut out = Vec::with_capacity(44 + self.data.len());
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + self.data.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&f.channels.to_le_bytes());
        out.extend_from_slice(&f.sample_rate.to_le_bytes());
        out.extend_from_slice(&f.bytes_per_second().to_le_bytes());
        out.extend_from_slice(&(f.block_align() as u16).to_le_bytes());
        out.extend_from_slice(&f.bits_per_sample.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.data);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mono(samples: usize) -> Pcm {
        Pcm { format: PcmFormat { channels: 1, sample_rate: 22050, bits_per_sample: 16 }, data: vec![1; samples * 2] }
    }

    #[test]
    fn round_trips_and_measures_duration() {
        let pcm = mono(22050);
        let back = Pcm::parse(&pcm.to_wav_bytes()).unwrap();
        assert_eq!(back, pcm);
        assert_eq!(back.duration_s(), 1.0);
    }

    #[test]
    fn silence_and_appending_add_up() {
        let mut pcm = mono(11025);
        pcm.push_silence(0.5);
        pcm.append(&mono(22050)).unwrap();
        assert_eq!(pcm.duration_s(), 2.0);
    }

    #[test]
    fn concat_reports_where_each_part_starts() {
        let (joined, offsets) = Pcm::concat([&mono(22050), &mono(11025)], 0.5).unwrap().unwrap();
        assert_eq!(offsets, [0.0, 1.5]);
        assert_eq!(joined.duration_s(), 2.5);
        assert!(Pcm::concat([], 0.0).unwrap().is_none());
    }

    #[test]
    fn a_streamed_header_size_is_trusted_only_up_to_the_file_end() {
        let mut bytes = mono(100).to_wav_bytes();
        bytes[40..44].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        assert_eq!(Pcm::parse(&bytes).unwrap().data.len(), 200);
    }

    #[test]
    fn other_files_are_refused() {
        assert!(Pcm::parse(b"ID3\x03 not a wav at all").is_err());
        let mut other = mono(10);
        other.format.sample_rate = 44100;
        assert!(mono(10).append(&other).is_err());
    }
}
