//! The Lambda zip, made from a Linux executable: normally the running s3fan
//! itself, stored as `bootstrap`, the file a `provided.al2023` runtime starts.
//!
//! The zip is deterministic (fixed timestamp, one entry, fixed compression),
//! so the same binary always gives the same bytes and the same CodeSha256,
//! and a redeploy can tell that the code has not changed.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

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
    #[error("cannot build the zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("cannot build the zip: {0}")]
    Io(#[from] std::io::Error),
}

/// A Linux executable ready to be the function's bootstrap.
pub struct Bootstrap {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub architecture: Architecture,
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
        Ok(Bootstrap {
            path,
            bytes,
            architecture,
        })
    }

    /// The deterministic zip holding this executable as `bootstrap`, mode 0755.
    pub fn zip(&self) -> Result<Vec<u8>, PackageError> {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(9))
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

    #[test]
    fn the_zip_is_deterministic_and_holds_an_executable_bootstrap() {
        let bootstrap = Bootstrap {
            path: "x".into(),
            bytes: b"\x7fELF pretend binary".repeat(100),
            architecture: Architecture::X86_64,
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
