//! Test fixture imitating q_kangaroo: a PyO3 extension whose arithmetic runs on GMP.
//!
//! GMP is reached through a few hand-declared `extern "C"` functions, so the
//! extension has a real `NEEDED libgmp.so.10` that a wheel must bundle.

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_ulong};

use pyo3::prelude::*;

/// When false, coefficients are computed in wrapping `u64` arithmetic (wrong from p(417) on);
/// they still go through GMP on their way to Python, so GMP stays linked.
const EXACT: bool = true;

/// The version that `version()` reports: the crate's own.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// GMP's `__mpz_struct` (x86_64 and other LP64 targets).
#[repr(C)]
struct Mpz {
    alloc: c_int,
    size: c_int,
    limbs: *mut u64,
}

#[link(name = "gmp")]
extern "C" {
    fn __gmpz_init_set_ui(rop: *mut Mpz, op: c_ulong);
    fn __gmpz_set_ui(rop: *mut Mpz, op: c_ulong);
    fn __gmpz_add(rop: *mut Mpz, op1: *const Mpz, op2: *const Mpz);
    fn __gmpz_clear(x: *mut Mpz);
    fn __gmpz_sizeinbase(op: *const Mpz, base: c_int) -> usize;
    fn __gmpz_get_str(out: *mut c_char, base: c_int, op: *const Mpz) -> *mut c_char;
}

/// An owned GMP integer.
struct BigInt(Mpz);

impl BigInt {
    fn from_u64(value: u64) -> Self {
        let mut z = Mpz { alloc: 0, size: 0, limbs: std::ptr::null_mut() };
        // SAFETY: `z` is a fresh struct that GMP initialises.
        unsafe { __gmpz_init_set_ui(&mut z, value as c_ulong) };
        BigInt(z)
    }

    fn set_u64(&mut self, value: u64) {
        // SAFETY: `self.0` was initialised by GMP.
        unsafe { __gmpz_set_ui(&mut self.0, value as c_ulong) };
    }

    /// `self += other`.
    fn add_assign(&mut self, other: &BigInt) {
        let this: *mut Mpz = &mut self.0;
        // SAFETY: GMP allows the output to alias an input.
        unsafe { __gmpz_add(this, this, &other.0) };
    }

    fn to_decimal(&self) -> CString {
        // SAFETY: sizeinbase + 2 bytes hold the digits, a sign and the NUL.
        unsafe {
            let mut buf = vec![0u8; __gmpz_sizeinbase(&self.0, 10) + 2];
            __gmpz_get_str(buf.as_mut_ptr().cast::<c_char>(), 10, &self.0);
            let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            buf.truncate(len);
            CString::new(buf).expect("GMP wrote no interior NUL")
        }
    }

    fn to_py(&self, py: Python<'_>) -> PyResult<PyObject> {
        let digits = self.to_decimal();
        // SAFETY: a NUL-terminated decimal string; a NULL result carries a Python error.
        unsafe {
            let obj = pyo3::ffi::PyLong_FromString(digits.as_ptr(), std::ptr::null_mut(), 10);
            PyObject::from_owned_ptr_or_err(py, obj)
        }
    }
}

impl Drop for BigInt {
    fn drop(&mut self) {
        // SAFETY: initialised by GMP and cleared exactly once.
        unsafe { __gmpz_clear(&mut self.0) };
    }
}

/// Coefficients of 1/prod_{k>=1}(1 - q^k) up to q^(n-1), exactly, with GMP.
fn partitions_exact(n: usize) -> Vec<BigInt> {
    let mut coeffs: Vec<BigInt> = (0..n).map(|i| BigInt::from_u64(u64::from(i == 0))).collect();
    for k in 1..n {
        for i in k..n {
            let (low, high) = coeffs.split_at_mut(i);
            high[0].add_assign(&low[i - k]);
        }
    }
    coeffs
}

/// The same coefficients in wrapping `u64` arithmetic, then moved into GMP integers.
fn partitions_wrapping(n: usize) -> Vec<BigInt> {
    let mut coeffs: Vec<u64> = (0..n).map(|i| u64::from(i == 0)).collect();
    for k in 1..n {
        for i in k..n {
            coeffs[i] = coeffs[i].wrapping_add(coeffs[i - k]);
        }
    }
    let mut out: Vec<BigInt> = (0..n).map(|_| BigInt::from_u64(0)).collect();
    for (z, &c) in out.iter_mut().zip(&coeffs) {
        z.set_u64(c);
    }
    out
}

/// The version of the compiled extension.
#[pyfunction]
fn version() -> &'static str {
    VERSION
}

/// The first `n` coefficients p(0), ..., p(n-1) of the partition generating function.
#[pyfunction]
fn partition_gf(py: Python<'_>, n: usize) -> PyResult<Vec<PyObject>> {
    let coeffs = if EXACT { partitions_exact(n) } else { partitions_wrapping(n) };
    coeffs.iter().map(|c| c.to_py(py)).collect()
}

#[pymodule]
fn _q_kangaroo(_py: Python<'_>, m: &PyModule) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(partition_gf, m)?)?;
    Ok(())
}
