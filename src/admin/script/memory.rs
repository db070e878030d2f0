//! The process's global allocator that counts, per thread, the bytes each
//! thread holds, so that a script's memory can be limited.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread. `const` and without
    /// a destructor, so the allocator may touch it.
    static THREAD_HELD_BYTES: Cell<isize> = const { Cell::new(0) };
}

/// The system allocator, counting per thread the bytes each thread holds, so
/// that a script's memory can be limited. Install it in the binary:
///
/// ```text
/// #[global_allocator]
/// static ALLOCATOR: piarchive::admin::script::ScriptMemoryCounter =
///     piarchive::admin::script::ScriptMemoryCounter;
/// ```
///
/// The cost is one thread-local add per allocation.
pub struct ScriptMemoryCounter;

fn count_held_bytes(delta: isize) {
    // `try_with` fails only while the thread is being torn down.
    let _ = THREAD_HELD_BYTES.try_with(|held| held.set(held.get().wrapping_add(delta)));
}

pub(super) fn thread_held_bytes() -> isize {
    THREAD_HELD_BYTES.try_with(Cell::get).unwrap_or(0)
}

pub(super) fn signed(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded unchanged to `System`; the counting touches
// only a `const` thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for ScriptMemoryCounter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc(layout);
        if !pointer.is_null() {
            count_held_bytes(signed(layout.size()));
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc_zeroed(layout);
        if !pointer.is_null() {
            count_held_bytes(signed(layout.size()));
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        System.dealloc(pointer, layout);
        count_held_bytes(-signed(layout.size()));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_pointer = System.realloc(pointer, layout, new_size);
        if !new_pointer.is_null() {
            count_held_bytes(signed(new_size).wrapping_sub(signed(layout.size())));
        }
        new_pointer
    }
}

/// Whether [`ScriptMemoryCounter`] is the global allocator, i.e. whether
/// [`super::Limits::max_memory_bytes`] is enforced. The appliance checks this once
/// at start-up.
pub fn memory_limit_enforced() -> bool {
    let before = thread_held_bytes();
    let probe = std::hint::black_box(Vec::<u8>::with_capacity(4096));
    let after = thread_held_bytes();
    drop(probe);
    after - before >= 4096
}

#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: ScriptMemoryCounter = ScriptMemoryCounter;
