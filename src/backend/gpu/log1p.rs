//! Dispatch of `shaders/log1p.wgsl` (twin `cpu::log1p::log1p`): the encoder's input
//! transform, recorded on resident buffers, and a stand-alone path that compiles its own
//! pipeline (the smoke test of the page's GPU check and of shader-error reporting).

use super::dispatch::{encode, grid, to_u32, uniform_buffer, Binding, Recorder};
use super::kernels::{grid_for, shader_source, Log1pParams, Pipelines};
use super::GpuContext;
use crate::error::{Error, Result};

impl Pipelines {
    /// Records `y = ln(1 + x)` over `n` elements on resident buffers (the encoder's input
    /// from the raw counts of the minibatch). One dispatch.
    pub fn encode_log1p(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        x: &dyn Binding,
        y: &dyn Binding,
        n: usize,
    ) -> Result<()> {
        let p = Log1pParams {
            n: to_u32(n, "elements")?,
            pad: [0; 3],
        };
        let p_buf = uniform_buffer(ctx, "log1p.params", &p);
        encode(
            ctx,
            encoder,
            "log1p",
            &self.log1p,
            &[(0, x), (1, y), (2, &p_buf)],
            grid(p.n, 256),
        )
    }
}

/// `y = ln(1 + x)` on the GPU (twin of `cpu::log1p::log1p`). Compiles, uploads,
/// dispatches once and reads back: a smoke path used by tests and the page's GPU check.
pub async fn log1p(ctx: &GpuContext, x: &[f32]) -> Result<Vec<f32>> {
    log1p_with_source(ctx, x, shader_source("log1p")?).await
}

/// As [`log1p`], with the shader source given (tests pass a broken one on purpose).
pub async fn log1p_with_source(ctx: &GpuContext, x: &[f32], source: &str) -> Result<Vec<f32>> {
    let n = u32::try_from(x.len()).map_err(|_| {
        Error::Gpu(format!(
            "{} elements are too many for one dispatch",
            x.len()
        ))
    })?;
    let pipeline = ctx.compute_pipeline("log1p", source).await?;
    let x_buf = ctx
        .storage_buffer("log1p.x", bytemuck::cast_slice(x), false)
        .await?;
    let y_buf = ctx
        .storage_buffer("log1p.y", &vec![0u8; x.len() * 4], true)
        .await?;
    let params = Log1pParams { n, pad: [0; 3] };
    let p_buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("log1p.params"),
        size: std::mem::size_of::<Log1pParams>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    ctx.queue
        .write_buffer(&p_buf, 0, bytemuck::bytes_of(&params));
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("log1p"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: x_buf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: y_buf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: p_buf.as_entire_binding(),
            },
        ],
    });
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("log1p"),
        });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("log1p"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        let (gx, gy) = grid_for(n);
        pass.dispatch_workgroups(gx, gy, 1);
    }
    ctx.queue.submit([encoder.finish()]);
    if let Some(e) = scope.pop().await {
        return Err(Error::Gpu(format!("dispatching log1p failed: {e}")));
    }
    let bytes = ctx.read_buffer(&y_buf, (x.len() * 4).max(4) as u64).await?;
    Ok(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes)[..x.len()].to_vec())
}

/// The GPU path checked end to end: `log1p` of `n` values on the GPU against its CPU
/// twin; the largest absolute difference (the page's WebGPU check).
pub async fn self_check(ctx: &GpuContext, n: usize) -> Result<f32> {
    let x: Vec<f32> = (0..n).map(|i| (i % 97) as f32 * 0.37).collect();
    let got = log1p(ctx, &x).await?;
    let mut want = vec![0.0; n];
    crate::backend::cpu::log1p::log1p(&x, &mut want);
    Ok(got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max))
}
