//! Shared plumbing for kernel dispatch: uniform and storage buffers, dispatches with
//! bind groups built from `(binding, buffer or range)` pairs, the [`Recorder`] that puts
//! a recording's consecutive dispatches into one compute pass, and f32 readback.
//!
//! The upload-dispatch-readback methods on [`super::kernels::Pipelines`] are built from
//! these; a training loop keeps its buffers resident and calls [`encode`] directly.
//!
//! While a tape is active on the context ([`GpuContext::begin_tape`]), the n-th uniform
//! buffer and the n-th bind group of a recording are reused from the last recording
//! with the same key (the uniform rewritten in place, the bind group kept when its
//! pipeline and buffers are the same): a training step then creates no GPU objects.

use super::GpuContext;
use crate::error::{Error, Result};

/// What a kernel binds as a storage buffer: a whole buffer, or a range of one (a
/// tensor's place in the flat parameter buffers, see [`View`]).
pub trait Binding {
    /// The buffer.
    fn buffer(&self) -> &wgpu::Buffer;
    /// Where the range starts, in bytes (a multiple of the adapter's storage offset
    /// alignment).
    fn offset_bytes(&self) -> u64 {
        0
    }
    /// The range's size in bytes (`None`: to the end of the buffer).
    fn size_bytes(&self) -> Option<wgpu::BufferSize> {
        None
    }
}

impl Binding for wgpu::Buffer {
    fn buffer(&self) -> &wgpu::Buffer {
        self
    }
}

/// `len` f32 values of `buffer` from byte `offset_bytes`: one tensor of a flat buffer.
#[derive(Debug, Clone)]
pub struct View {
    /// The flat buffer.
    pub buffer: wgpu::Buffer,
    /// Start in bytes (aligned to the adapter's `min_storage_buffer_offset_alignment`).
    pub offset_bytes: u64,
    /// Values (f32).
    pub len: usize,
}

impl Binding for View {
    fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
    fn offset_bytes(&self) -> u64 {
        self.offset_bytes
    }
    fn size_bytes(&self) -> Option<wgpu::BufferSize> {
        wgpu::BufferSize::new((self.len.max(1) * 4) as u64)
    }
}

/// One dispatch waiting for its compute pass.
struct Pending {
    pipeline: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
    groups: (u32, u32, u32),
}

/// A command encoder whose dispatches are gathered into compute passes: consecutive
/// dispatches share one pass (wgpu orders each dispatch's storage writes before the
/// next one's reads), which ends only where a copy comes or the recording finishes. A
/// training step is then one compute pass between the copies before and after it.
pub struct Recorder {
    encoder: wgpu::CommandEncoder,
    label: String,
    pending: Vec<Pending>,
    passes: usize,
}

impl Recorder {
    /// A new recording named `label` (the command buffer's and its passes' label).
    pub fn new(ctx: &GpuContext, label: &str) -> Recorder {
        Recorder {
            encoder: ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) }),
            label: label.to_string(),
            pending: Vec::new(),
            passes: 0,
        }
    }

    /// Copies `size` bytes between buffers, after the dispatches recorded so far.
    pub fn copy_buffer_to_buffer(
        &mut self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    ) {
        self.flush();
        self.encoder
            .copy_buffer_to_buffer(src, src_offset, dst, dst_offset, size);
    }

    /// Compute passes begun so far (a training step: one).
    pub fn passes(&self) -> usize {
        self.passes + usize::from(!self.pending.is_empty())
    }

    fn push(&mut self, pending: Pending) {
        self.pending.push(pending);
    }

    /// Records the waiting dispatches as one compute pass.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut pass = self
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&self.label),
                timestamp_writes: None,
            });
        for p in self.pending.drain(..) {
            pass.set_pipeline(&p.pipeline);
            pass.set_bind_group(0, &p.group, &[]);
            pass.dispatch_workgroups(p.groups.0, p.groups.1, p.groups.2);
        }
        self.passes += 1;
    }

    /// The finished command buffer (the last pass closed).
    pub fn finish(mut self) -> wgpu::CommandBuffer {
        self.flush();
        self.encoder.finish()
    }
}

/// A uniform buffer holding `value` (a `#[repr(C)]` params struct mirrored in WGSL),
/// its size rounded up to 16 bytes.
pub fn uniform_buffer<T: bytemuck::Pod>(ctx: &GpuContext, label: &str, value: &T) -> wgpu::Buffer {
    let bytes = bytemuck::bytes_of(value);
    let size = (bytes.len() as u64).div_ceil(16) * 16;
    let buffer = ctx.taped_uniform(size).unwrap_or_else(|| {
        let b = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.tape_uniform(&b);
        b
    });
    ctx.queue.write_buffer(&buffer, 0, bytes);
    buffer
}

/// A storage buffer initialised with `data` (readable back when `readable`).
pub async fn f32_buffer(
    ctx: &GpuContext,
    label: &str,
    data: &[f32],
    readable: bool,
) -> Result<wgpu::Buffer> {
    ctx.storage_buffer(label, bytemuck::cast_slice(data), readable)
        .await
}

/// A zeroed, readable storage buffer of `n` f32 values (a kernel output).
pub async fn f32_output(ctx: &GpuContext, label: &str, n: usize) -> Result<wgpu::Buffer> {
    ctx.storage_buffer(label, &vec![0u8; n * 4], true).await
}

/// Reads `n` f32 values back from the start of `buffer`.
pub async fn read_f32(ctx: &GpuContext, buffer: &wgpu::Buffer, n: usize) -> Result<Vec<f32>> {
    let bytes = ctx.read_buffer(buffer, (n * 4).max(4) as u64).await?;
    Ok(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes)[..n].to_vec())
}

/// `n` f32 from byte `offset` of each buffer in `parts` `(buffer, offset, n)`,
/// concatenated in order: one copy each into one staging buffer and one wait, however
/// many parts (a model's tensors).
pub async fn read_f32_concat(
    ctx: &GpuContext,
    parts: &[(&wgpu::Buffer, u64, usize)],
) -> Result<Vec<f32>> {
    let total: usize = parts.iter().map(|&(_, _, n)| n).sum();
    if total == 0 {
        return Ok(Vec::new());
    }
    ctx.check_lost()?;
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: (total * 4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("readback"),
        });
    let mut offset = 0u64;
    for &(buffer, from, n) in parts {
        if n > 0 {
            encoder.copy_buffer_to_buffer(buffer, from, &staging, offset, (n * 4) as u64);
            offset += (n * 4) as u64;
        }
    }
    ctx.queue.submit([encoder.finish()]);
    let bytes = ctx.map_read(&staging, (total * 4) as u64).await?;
    Ok(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes))
}

/// `n` as a u32 for a params struct, or an error naming `what`.
pub fn to_u32(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n)
        .map_err(|_| Error::Gpu(format!("{what} = {n} is too large for one GPU dispatch")))
}

/// Checks that a slice holds at least `want` values (a programming error otherwise,
/// reported rather than read out of bounds).
pub fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got < want {
        return Err(Error::Gpu(format!(
            "{what} holds {got} values, the kernel needs {want}"
        )));
    }
    Ok(())
}

/// Workgroups for `n` items at `per_group` per group, spread over x and y so that no
/// dimension exceeds WebGPU's 65535 (the shader folds `(x, y)` back with
/// `num_workgroups.x`).
pub fn grid(n: u32, per_group: u32) -> (u32, u32, u32) {
    let groups = n.div_ceil(per_group).max(1);
    if groups <= 65_535 {
        (groups, 1, 1)
    } else {
        (65_535, groups.div_ceil(65_535), 1)
    }
}

/// Records one dispatch of `pipeline` over `groups` with a bind group (group 0) made of
/// `bindings` into `encoder` (in its current compute pass); a grid over the adapter's
/// per-dimension limit is refused before anything is recorded.
pub fn encode(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    bindings: &[(u32, &dyn Binding)],
    groups: (u32, u32, u32),
) -> Result<()> {
    let limit = ctx.device.limits().max_compute_workgroups_per_dimension;
    if groups.0 > limit || groups.1 > limit || groups.2 > limit {
        return Err(Error::Gpu(format!(
            "{label}: a grid of {groups:?} workgroups is over the adapter's {limit} per dimension"
        )));
    }
    let bind_group = ctx.taped_bind_group(pipeline, bindings).unwrap_or_else(|| {
        let entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .map(|&(binding, b)| wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer(),
                    offset: b.offset_bytes(),
                    size: b.size_bytes(),
                }),
            })
            .collect();
        let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        ctx.tape_bind_group(pipeline, bindings, &bg);
        bg
    });
    encoder.push(Pending {
        pipeline: pipeline.clone(),
        group: bind_group,
        groups,
    });
    ctx.count_dispatch(label);
    Ok(())
}

/// Records what `record` encodes into one command buffer and submits it, inside a
/// validation scope: errors (from `record` or from wgpu) are returned naming `label`.
pub async fn submit<F>(ctx: &GpuContext, label: &str, record: F) -> Result<()>
where
    F: FnOnce(&mut Recorder) -> Result<()>,
{
    ctx.check_lost()?;
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let mut encoder = Recorder::new(ctx, label);
    let recorded = record(&mut encoder);
    if recorded.is_ok() {
        ctx.count_passes(encoder.passes());
        ctx.queue.submit([encoder.finish()]);
    }
    let error = scope.pop().await;
    recorded?;
    if let Some(e) = error {
        return Err(Error::Gpu(format!("dispatching {label} failed: {e}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_splits_over_y() {
        assert_eq!(grid(1, 256), (1, 1, 1));
        assert_eq!(grid(0, 256), (1, 1, 1));
        assert_eq!(grid(65_535, 1), (65_535, 1, 1));
        assert_eq!(grid(65_536, 1), (65_535, 2, 1));
    }
}
