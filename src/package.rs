//! The Lambda zip, made from a Linux executable: normally the running s3fan
//! itself, stored as `bootstrap`, the file a `provided.al2023` runtime starts.
//!
//! The zip is deterministic (fixed timestamp, one entry, fixed compression),
//! so the same binary always gives the same bytes and the same CodeSha256,
//! and a redeploy can tell that the code has not changed.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use sha2::Digest;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// A Lambda instruction set, read from the executable's ELF header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    X86_64,
    Arm64,
}

impl Architecture {
    /// The name Lambda's `Architectures` field uses.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("cannot find the running s3fan executable: {0}")]
    CurrentExe(std::io::Error),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is {what}, which Lambda cannot run: a provided.al2023 function needs a Linux \
         executable. Build s3fan for Linux (e.g. `cargo build --release --target \
         x86_64-unknown-linux-musl`) and pass it with --bootstrap PATH"
    )]
    NotLinux { path: PathBuf, what: String },
    #[error(
        "{path} is a Linux executable for {machine}; Lambda runs only x86_64 and arm64 \
         (aarch64). Pass a build for one of those with --bootstrap PATH"
    )]
    UnsupportedMachine { path: PathBuf, machine: String },
    #[error(
        "{path} needs glibc {needed}, but Lambda's provided.al2023 has glibc 2.34, so the \
         function would fail to start. Build s3fan without a newer glibc: for a static binary, \
         `rustup target add x86_64-unknown-linux-musl` (Debian: apt install musl-tools) and \
         `cargo build --release --target x86_64-unknown-linux-musl`, or `cargo zigbuild --release \
         --target x86_64-unknown-linux-gnu.2.34`; then pass it with --bootstrap PATH"
    )]
    GlibcTooNew { path: PathBuf, needed: GlibcVersion },
    #[error("cannot build the zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("cannot build the zip: {0}")]
    Io(#[from] std::io::Error),
}

/// The newest glibc provided.al2023 offers.
pub const LAMBDA_GLIBC: GlibcVersion = GlibcVersion(2, 34);

/// A glibc symbol version, `GLIBC_major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlibcVersion(pub u32, pub u32);

impl std::fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// The function's code: the zip, its CodeSha256 as Lambda reports it, and
/// the architecture read from the executable.
pub struct Code {
    pub zip: Vec<u8>,
    pub sha256: String,
    pub architecture: Architecture,
}

impl Code {
    /// The zip of the executable at `path`, or of the running s3fan.
    pub fn load(path: Option<&Path>) -> Result<Code, PackageError> {
        let bootstrap = Bootstrap::load(path)?;
        let zip = bootstrap.zip()?;
        Ok(Code {
            sha256: aws_smithy_types::base64::encode(sha2::Sha256::digest(&zip)),
            zip,
            architecture: bootstrap.architecture,
        })
    }
}

/// A Linux executable ready to be the function's bootstrap.
pub struct Bootstrap {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub architecture: Architecture,
    /// The newest glibc it needs; `None` for a static (e.g. musl) binary.
    pub glibc: Option<GlibcVersion>,
}

impl Bootstrap {
    /// The executable at `path`, or the running s3fan when `None`.
    pub fn load(path: Option<&Path>) -> Result<Bootstrap, PackageError> {
        let path = match path {
            Some(path) => path.to_path_buf(),
            None => std::env::current_exe().map_err(PackageError::CurrentExe)?,
        };
        let bytes = std::fs::read(&path).map_err(|source| PackageError::Read {
            path: path.clone(),
            source,
        })?;
        let architecture = elf_architecture(&bytes).map_err(|kind| match kind {
            NotLambdaElf::Foreign(what) => PackageError::NotLinux {
                path: path.clone(),
                what,
            },
            NotLambdaElf::Machine(machine) => PackageError::UnsupportedMachine {
                path: path.clone(),
                machine,
            },
        })?;
        let glibc = required_glibc(&bytes);
        if let Some(needed) = glibc.filter(|needed| *needed > LAMBDA_GLIBC) {
            return Err(PackageError::GlibcTooNew { path, needed });
        }
        Ok(Bootstrap {
            path,
            bytes,
            architecture,
            glibc,
        })
    }

    /// The deterministic zip holding this executable as `bootstrap`, mode 0755.
    pub fn zip(&self) -> Result<Vec<u8>, PackageError> {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            // Level 6, not 9: measured on s3fan's own binary (bench/RESULTS.md),
            // 9 saves 0.6% of the zip for three times the time, and every
            // deploy and status pays that time.
            .compression_level(Some(6))
            .last_modified_time(DateTime::default())
            .unix_permissions(0o755);
        writer.start_file("bootstrap", options)?;
        writer.write_all(&self.bytes)?;
        Ok(writer.finish()?.into_inner())
    }
}

/// Why an executable cannot be a Lambda bootstrap.
#[derive(Debug, PartialEq, Eq)]
enum NotLambdaElf {
    /// Not ELF at all: says what it looks like instead.
    Foreign(String),
    /// ELF, but for a machine Lambda does not offer.
    Machine(String),
}

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// Reads the instruction set from an ELF header (`e_machine`, offset 18).
fn elf_architecture(bytes: &[u8]) -> Result<Architecture, NotLambdaElf> {
    if bytes.len() < 20 || bytes[..4] != *b"\x7fELF" {
        return Err(NotLambdaElf::Foreign(executable_kind(bytes).into()));
    }
    let class = bytes[4];
    let little_endian = bytes[5] == 1;
    let machine = if little_endian {
        u16::from_le_bytes([bytes[18], bytes[19]])
    } else {
        u16::from_be_bytes([bytes[18], bytes[19]])
    };
    match (class, little_endian, machine) {
        (2, true, EM_X86_64) => Ok(Architecture::X86_64),
        (2, true, EM_AARCH64) => Ok(Architecture::Arm64),
        _ => Err(NotLambdaElf::Machine(format!(
            "ELF machine {machine}, {}-bit, {}-endian",
            if class == 2 { 64 } else { 32 },
            if little_endian { "little" } else { "big" }
        ))),
    }
}

/// The newest `GLIBC_x.y` among the executable's version needs (the
/// `SHT_GNU_verneed` section, what `objdump -p` lists under "Version
/// References"). 64-bit little-endian ELF only, as `elf_architecture`
/// accepts; every read is bounds-checked, a malformed file gives `None`.
fn required_glibc(bytes: &[u8]) -> Option<GlibcVersion> {
    const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
    // The field at `base + offset`: offsets come from the file, so even the
    // addition is checked.
    let field = |base: usize, offset: usize, width: usize| {
        let at = base.checked_add(offset)?;
        bytes.get(at..at.checked_add(width)?)
    };
    let u16_at = |base, offset| Some(u16::from_le_bytes(field(base, offset, 2)?.try_into().ok()?));
    let u32_at = |base, offset| Some(u32::from_le_bytes(field(base, offset, 4)?.try_into().ok()?));
    let u64_at = |base, offset| Some(u64::from_le_bytes(field(base, offset, 8)?.try_into().ok()?));
    let section_headers = usize::try_from(u64_at(0x28, 0)?).ok()?;
    let entry_size = usize::from(u16_at(0x3a, 0)?);
    let count = usize::from(u16_at(0x3c, 0)?);
    let section = |index: usize| section_headers.checked_add(index.checked_mul(entry_size)?);
    let mut newest: Option<GlibcVersion> = None;
    for index in 0..count {
        let header = section(index)?;
        if u32_at(header, 4)? != SHT_GNU_VERNEED {
            continue;
        }
        let offset = usize::try_from(u64_at(header, 0x18)?).ok()?;
        let strings = section(usize::try_from(u32_at(header, 0x28)?).ok()?)?;
        let strings = usize::try_from(u64_at(strings, 0x18)?).ok()?;
        let needs = u32_at(header, 0x2c)?;
        let mut need = offset;
        // Bounded by the section's own count: a cycle in malformed `next`
        // offsets cannot loop forever.
        for _ in 0..needs {
            let aux_count = u16_at(need, 2)?;
            let mut aux = need.checked_add(usize::try_from(u32_at(need, 8)?).ok()?)?;
            for _ in 0..aux_count {
                let name = strings.checked_add(usize::try_from(u32_at(aux, 8)?).ok()?)?;
                if let Some(version) = glibc_version(c_string(bytes, name)?) {
                    newest = newest.max(Some(version));
                }
                aux = aux.checked_add(usize::try_from(u32_at(aux, 12)?).ok()?)?;
            }
            need = need.checked_add(usize::try_from(u32_at(need, 12)?).ok()?)?;
        }
    }
    newest
}

fn c_string(bytes: &[u8], at: usize) -> Option<&str> {
    let rest = bytes.get(at..)?;
    let end = rest.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

fn glibc_version(name: &str) -> Option<GlibcVersion> {
    let mut parts = name.strip_prefix("GLIBC_")?.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some(GlibcVersion(major, minor))
}

fn executable_kind(bytes: &[u8]) -> &'static str {
    match bytes.get(..4) {
        Some([0xcf, 0xfa, 0xed, 0xfe] | [0xce, 0xfa, 0xed, 0xfe]) => "a macOS (Mach-O) executable",
        Some([0xca, 0xfe, 0xba, 0xbe]) => "a macOS universal (Mach-O) executable",
        Some([b'M', b'Z', ..]) => "a Windows (PE) executable",
        Some([b'#', b'!', ..]) => "a script, not a compiled executable",
        _ => "not an ELF executable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn elf_header(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(b"\x7fELF");
        header[4] = class;
        header[5] = data;
        header[18..20].copy_from_slice(&machine.to_le_bytes());
        header
    }

    #[test]
    fn reads_the_architecture_from_the_elf_header() {
        assert_eq!(
            elf_architecture(&elf_header(2, 1, 62)),
            Ok(Architecture::X86_64)
        );
        assert_eq!(
            elf_architecture(&elf_header(2, 1, 183)),
            Ok(Architecture::Arm64)
        );
        assert!(
            matches!(elf_architecture(&elf_header(1, 1, 3)), Err(NotLambdaElf::Machine(m)) if m.contains("32-bit"))
        );
    }

    #[test]
    fn the_running_test_binary_is_this_hosts_architecture() {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let expected = if cfg!(target_arch = "aarch64") {
            Architecture::Arm64
        } else {
            Architecture::X86_64
        };
        assert_eq!(elf_architecture(&bytes), Ok(expected));
    }

    #[test]
    fn names_foreign_executables() {
        let cases: &[(&[u8], &str)] = &[
            (b"\xcf\xfa\xed\xfe\x07\x00\x00\x01", "macOS"),
            (b"\xca\xfe\xba\xbe\x00\x00\x00\x02", "universal"),
            (b"MZ\x90\x00\x03\x00\x00\x00", "Windows"),
            (b"#!/bin/sh\necho hi\n", "script"),
            (b"", "not an ELF"),
        ];
        for (bytes, expected) in cases {
            match elf_architecture(bytes) {
                Err(NotLambdaElf::Foreign(what)) => assert!(what.contains(expected), "{what}"),
                other => panic!("{expected}: {other:?}"),
            }
        }
    }

    /// A minimal 64-bit ELF whose only content is a version-needs section
    /// listing `versions` from libc.so.6.
    fn elf_needing(versions: &[&str]) -> Vec<u8> {
        let mut strings = b"\0libc.so.6\0".to_vec();
        let names: Vec<u32> = versions
            .iter()
            .map(|v| {
                let at = strings.len() as u32;
                strings.extend_from_slice(v.as_bytes());
                strings.push(0);
                at
            })
            .collect();
        let mut verneed = Vec::new();
        verneed.extend_from_slice(&1u16.to_le_bytes()); // vn_version
        verneed.extend_from_slice(&(versions.len() as u16).to_le_bytes()); // vn_cnt
        verneed.extend_from_slice(&1u32.to_le_bytes()); // vn_file: "libc.so.6"
        verneed.extend_from_slice(&16u32.to_le_bytes()); // vn_aux
        verneed.extend_from_slice(&0u32.to_le_bytes()); // vn_next
        for (index, name) in names.iter().enumerate() {
            verneed.extend_from_slice(&0u32.to_le_bytes()); // vna_hash
            verneed.extend_from_slice(&0u16.to_le_bytes()); // vna_flags
            verneed.extend_from_slice(&2u16.to_le_bytes()); // vna_other
            verneed.extend_from_slice(&name.to_le_bytes()); // vna_name
            let next: u32 = if index + 1 < names.len() { 16 } else { 0 };
            verneed.extend_from_slice(&next.to_le_bytes()); // vna_next
        }
        let mut elf = elf_header(2, 1, 62);
        let strings_at = elf.len();
        elf.extend_from_slice(&strings);
        let verneed_at = elf.len();
        elf.extend_from_slice(&verneed);
        let headers_at = elf.len();
        elf[0x28..0x30].copy_from_slice(&(headers_at as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        let section = |kind: u32, offset: usize, size: usize, link: u32, info: u32| {
            let mut header = vec![0u8; 64];
            header[4..8].copy_from_slice(&kind.to_le_bytes());
            header[0x18..0x20].copy_from_slice(&(offset as u64).to_le_bytes());
            header[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            header[0x28..0x2c].copy_from_slice(&link.to_le_bytes());
            header[0x2c..0x30].copy_from_slice(&info.to_le_bytes());
            header
        };
        elf.extend(section(0, 0, 0, 0, 0));
        elf.extend(section(3, strings_at, strings.len(), 0, 0));
        elf.extend(section(0x6fff_fffe, verneed_at, verneed.len(), 1, 1));
        elf
    }

    #[test]
    fn reads_the_newest_glibc_from_version_needs() {
        let elf = elf_needing(&["GLIBC_2.2.5", "GLIBC_2.34", "GLIBC_2.17", "GLIBC_PRIVATE"]);
        assert_eq!(required_glibc(&elf), Some(GlibcVersion(2, 34)));
        assert_eq!(
            required_glibc(&elf_needing(&["GLIBC_2.38"])),
            Some(GlibcVersion(2, 38))
        );
        assert_eq!(
            required_glibc(&elf_header(2, 1, 62)),
            None,
            "static: no needs"
        );
    }

    #[test]
    fn malformed_headers_give_no_answer_and_no_panic() {
        let elf = elf_needing(&["GLIBC_2.38"]);
        for cut in [0, 20, 64, 80, elf.len() - 1] {
            let _ = required_glibc(&elf[..cut]);
        }
        let mut wild = elf.clone();
        wild[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(required_glibc(&wild), None);
    }

    #[test]
    fn a_bootstrap_needing_a_newer_glibc_is_refused_with_the_fix() {
        let path = std::env::temp_dir().join(format!("s3fan-new-glibc-{}", std::process::id()));
        std::fs::write(&path, elf_needing(&["GLIBC_2.38"])).unwrap();
        let err = Bootstrap::load(Some(&path))
            .err()
            .expect("refused")
            .to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(
            err.contains("needs glibc 2.38") && err.contains("2.34"),
            "{err}"
        );
        assert!(err.contains("musl") && err.contains("--bootstrap"), "{err}");
    }

    #[test]
    fn this_test_binary_fits_lambdas_glibc() {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let needed = required_glibc(&bytes).expect("a glibc build has version needs");
        assert!(
            needed >= GlibcVersion(2, 2) && needed <= LAMBDA_GLIBC,
            "{needed}"
        );
    }

    #[test]
    fn the_zip_is_deterministic_and_holds_an_executable_bootstrap() {
        let bootstrap = Bootstrap {
            path: "x".into(),
            bytes: b"\x7fELF pretend binary".repeat(100),
            architecture: Architecture::X86_64,
            glibc: None,
        };
        let first = bootstrap.zip().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(first, bootstrap.zip().unwrap(), "same input, same bytes");

        let mut archive = zip::ZipArchive::new(Cursor::new(first)).unwrap();
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_index(0).unwrap();
        assert_eq!(entry.name(), "bootstrap");
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        assert_eq!(content, bootstrap.bytes);
    }
}
