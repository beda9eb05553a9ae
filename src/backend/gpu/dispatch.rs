//! Shared plumbing for kernel dispatch: uniform and storage buffers, compute passes with
//! bind groups built from `(binding, buffer)` pairs, and f32 readback.
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

/// The first `n` f32 of each buffer in `parts`, concatenated in order: one copy into one
/// staging buffer and one wait, however many buffers (a model's tensors).
pub async fn read_f32_concat(
    ctx: &GpuContext,
    parts: &[(&wgpu::Buffer, usize)],
) -> Result<Vec<f32>> {
    let total: usize = parts.iter().map(|&(_, n)| n).sum();
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
    for &(buffer, n) in parts {
        if n > 0 {
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, offset, (n * 4) as u64);
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

/// Records one compute pass of `pipeline` over `groups` with a bind group (group 0)
/// made of `bindings` into `encoder`; a grid over the adapter's per-dimension limit is
/// refused before anything is recorded.
pub fn encode(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    bindings: &[(u32, &wgpu::Buffer)],
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
            .map(|&(binding, buffer)| wgpu::BindGroupEntry {
                binding,
                resource: buffer.as_entire_binding(),
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
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, &bind_group, &[]);
    pass.dispatch_workgroups(groups.0, groups.1, groups.2);
    ctx.count_dispatch(label);
    Ok(())
}

/// Records what `record` encodes into one command buffer and submits it, inside a
/// validation scope: errors (from `record` or from wgpu) are returned naming `label`.
pub async fn submit<F>(ctx: &GpuContext, label: &str, record: F) -> Result<()>
where
    F: FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
{
    ctx.check_lost()?;
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
    let recorded = record(&mut encoder);
    if recorded.is_ok() {
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
