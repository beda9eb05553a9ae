//! The wgpu side: one [`GpuContext`] (adapter, device, queue), shaders compiled inside
//! error scopes so a broken shader is a clear [`Error::Gpu`], never a silent no-op, and
//! buffer readback that works natively (polling) and in the browser (awaiting).
//!
//! Only the adapter's own limits are requested: WebGPU's defaults (8 storage buffers per
//! stage, 256 invocations per workgroup, 128 MiB per storage binding) are what kernels
//! are written for.

mod adam;
mod batchnorm;
mod counts;
pub mod dispatch;
pub mod kernels;
mod kl;
mod linear;
mod log1p;
mod nb_loglik;
mod onehot;
mod poisson_loglik;
mod relu_dropout;
mod reparam;
mod softmax;
mod step_guard;
mod zinb_loglik;

pub use batchnorm::BnTrainOutput;
pub use counts::NbBuffers;

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the user is told about the adapter in use.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct AdapterSummary {
    /// Adapter name as the driver reports it (empty in browsers, which hide it).
    pub name: String,
    /// Backend: `vulkan`, `metal`, `dx12`, `gl`, `webgpu`.
    pub backend: String,
    /// `discrete`, `integrated`, `cpu` (software), `virtual` or `other`.
    pub device_type: String,
    /// Driver name and version, when known.
    pub driver: String,
}

/// An open GPU device and its queue, with the device-lost state watched.
pub struct GpuContext {
    /// The adapter the device came from.
    pub adapter: wgpu::Adapter,
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    lost: Arc<Mutex<Option<String>>>,
    /// Compute dispatches recorded so far (see [`GpuContext::dispatches`]).
    dispatches: AtomicUsize,
    /// Compute passes submitted so far (see [`GpuContext::compute_passes`]).
    passes: AtomicUsize,
    /// Size in bytes of the largest buffer created so far.
    largest_buffer: AtomicU64,
    /// Recorded uniforms and bind groups, by tape key (see [`GpuContext::begin_tape`]).
    tapes: Mutex<Tapes>,
    /// Fault injection: the next out-of-memory scope reports an error (see
    /// [`GpuContext::fail_next_allocation`]).
    fail_allocation: AtomicBool,
    /// The labels of the dispatches recorded while a log is on (see
    /// [`GpuContext::start_kernel_log`]).
    kernel_log: Mutex<Option<Vec<String>>>,
    /// Whether that log is on: checked before the lock, so a training step's dispatches
    /// take no lock while nobody asks for the log.
    kernel_log_on: AtomicBool,
}

/// A bind group and what it was made of.
type TapedGroup = (
    wgpu::ComputePipeline,
    Vec<(u32, wgpu::Buffer, u64, Option<wgpu::BufferSize>)>,
    wgpu::BindGroup,
);

/// One recording's uniforms and bind groups, in call order, with the replay cursors.
#[derive(Default)]
struct Tape {
    uniforms: Vec<wgpu::Buffer>,
    groups: Vec<TapedGroup>,
    next_uniform: usize,
    next_group: usize,
}

#[derive(Default)]
struct Tapes {
    active: Option<u64>,
    tapes: std::collections::HashMap<u64, Tape>,
    /// Bind groups created and reused while a tape was active (for tests).
    created: usize,
    reused: usize,
}

impl GpuContext {
    /// Opens the default adapter (natively: `WGPU_BACKEND` may choose the backend; in the
    /// browser: WebGPU) and a device with the adapter's default limits.
    /// Fails with a clear error when no adapter exists.
    pub async fn new() -> Result<GpuContext> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                Error::Gpu(format!(
                    "no GPU adapter found ({e}); install a Vulkan driver (on Debian: \
                     mesa-vulkan-drivers) or use the CPU backend"
                ))
            })?;
        let limits = wgpu::Limits::default().using_resolution(adapter.limits());
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("cellvae"),
                required_features: wgpu::Features::empty(),
                required_limits: limits,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("the adapter refused a device: {e}")))?;
        let lost = Arc::new(Mutex::new(None));
        let lost_in_callback = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut l) = lost_in_callback.lock() {
                *l = Some(format!("{reason:?}: {message}"));
            }
        });
        device.on_uncaptured_error(Arc::new(|e| {
            // Errors inside our own scopes are returned to the caller; anything else is
            // a bug, reported rather than swallowed.
            log_error(&format!("uncaptured wgpu error: {e}"));
        }));
        Ok(GpuContext {
            adapter,
            device,
            queue,
            lost,
            dispatches: AtomicUsize::new(0),
            passes: AtomicUsize::new(0),
            largest_buffer: AtomicU64::new(0),
            tapes: Mutex::new(Tapes::default()),
            fail_allocation: AtomicBool::new(false),
            kernel_log: Mutex::new(None),
            kernel_log_on: AtomicBool::new(false),
        })
    }

    /// The adapter, for the user and for `metrics.json`.
    pub fn adapter_summary(&self) -> AdapterSummary {
        let info = self.adapter.get_info();
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend).to_lowercase(),
            device_type: match info.device_type {
                wgpu::DeviceType::DiscreteGpu => "discrete",
                wgpu::DeviceType::IntegratedGpu => "integrated",
                wgpu::DeviceType::Cpu => "cpu",
                wgpu::DeviceType::VirtualGpu => "virtual",
                wgpu::DeviceType::Other => "other",
            }
            .to_string(),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
        }
    }

    /// Starts (or replays) the tape `key`: until [`GpuContext::end_tape`], the n-th
    /// uniform buffer and bind group requested are those of the last recording with this
    /// key when they fit (same size; same pipeline and buffers). A recording that is the
    /// same sequence of dispatches every time (a training step for a given minibatch
    /// size) then creates no GPU objects after the first.
    pub fn begin_tape(&self, key: u64) {
        if let Ok(mut t) = self.tapes.lock() {
            t.active = Some(key);
            let tape = t.tapes.entry(key).or_default();
            tape.next_uniform = 0;
            tape.next_group = 0;
        }
    }

    /// Stops the active tape.
    pub fn end_tape(&self) {
        if let Ok(mut t) = self.tapes.lock() {
            t.active = None;
        }
    }

    /// (bind groups created, bind groups reused) while tapes were active.
    pub fn tape_stats(&self) -> (usize, usize) {
        self.tapes.lock().map_or((0, 0), |t| (t.created, t.reused))
    }

    /// The active tape's next uniform buffer when it has `size` bytes.
    pub(crate) fn taped_uniform(&self, size: u64) -> Option<wgpu::Buffer> {
        let mut t = self.tapes.lock().ok()?;
        let key = t.active?;
        let tape = t.tapes.get_mut(&key)?;
        let i = tape.next_uniform;
        match tape.uniforms.get(i) {
            Some(b) if b.size() == size => {
                tape.next_uniform += 1;
                Some(b.clone())
            }
            _ => None,
        }
    }

    /// Records a new uniform buffer at the active tape's cursor.
    pub(crate) fn tape_uniform(&self, buffer: &wgpu::Buffer) {
        let Ok(mut t) = self.tapes.lock() else { return };
        let Some(key) = t.active else { return };
        let Some(tape) = t.tapes.get_mut(&key) else {
            return;
        };
        let i = tape.next_uniform;
        if i < tape.uniforms.len() {
            tape.uniforms[i] = buffer.clone();
        } else {
            tape.uniforms.push(buffer.clone());
        }
        tape.next_uniform += 1;
    }

    /// The active tape's next bind group when it was made from the same pipeline and
    /// buffers.
    pub(crate) fn taped_bind_group(
        &self,
        pipeline: &wgpu::ComputePipeline,
        bindings: &[(u32, &dyn dispatch::Binding)],
    ) -> Option<wgpu::BindGroup> {
        let mut t = self.tapes.lock().ok()?;
        let key = t.active?;
        let tape = t.tapes.get_mut(&key)?;
        let (p, b, g) = tape.groups.get(tape.next_group)?;
        let same = p == pipeline
            && b.len() == bindings.len()
            && b.iter().zip(bindings).all(|((i, x, o, n), (j, y))| {
                i == j && x == y.buffer() && *o == y.offset_bytes() && *n == y.size_bytes()
            });
        if !same {
            return None;
        }
        let g = g.clone();
        tape.next_group += 1;
        t.reused += 1;
        Some(g)
    }

    /// Records a new bind group at the active tape's cursor.
    pub(crate) fn tape_bind_group(
        &self,
        pipeline: &wgpu::ComputePipeline,
        bindings: &[(u32, &dyn dispatch::Binding)],
        group: &wgpu::BindGroup,
    ) {
        let Ok(mut t) = self.tapes.lock() else { return };
        let Some(key) = t.active else { return };
        t.created += 1;
        let Some(tape) = t.tapes.get_mut(&key) else {
            return;
        };
        let entry = (
            pipeline.clone(),
            bindings
                .iter()
                .map(|&(i, b)| (i, b.buffer().clone(), b.offset_bytes(), b.size_bytes()))
                .collect(),
            group.clone(),
        );
        let i = tape.next_group;
        if i < tape.groups.len() {
            tape.groups[i] = entry;
        } else {
            tape.groups.push(entry);
        }
        tape.next_group += 1;
    }

    /// Compute dispatches recorded on this context so far (the difference over a step is
    /// that step's dispatch count).
    pub fn dispatches(&self) -> usize {
        self.dispatches.load(Ordering::Relaxed)
    }

    /// Compute passes submitted on this context so far (a training step records its
    /// dispatches into one).
    pub fn compute_passes(&self) -> usize {
        self.passes.load(Ordering::Relaxed)
    }

    pub(crate) fn count_passes(&self, n: usize) {
        self.passes.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn count_dispatch(&self, label: &str) {
        self.dispatches.fetch_add(1, Ordering::Relaxed);
        if !self.kernel_log_on.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(mut log) = self.kernel_log.lock() {
            if let Some(l) = log.as_mut() {
                l.push(label.to_string());
            }
        }
    }

    /// Starts logging the label of every dispatch recorded (until
    /// [`GpuContext::take_kernel_log`]): what the page's shader viewer lists.
    pub fn start_kernel_log(&self) {
        if let Ok(mut log) = self.kernel_log.lock() {
            *log = Some(Vec::new());
            self.kernel_log_on.store(true, Ordering::Relaxed);
        }
    }

    /// The labels logged since [`GpuContext::start_kernel_log`], in recording order; stops
    /// the log.
    pub fn take_kernel_log(&self) -> Vec<String> {
        self.kernel_log_on.store(false, Ordering::Relaxed);
        self.kernel_log
            .lock()
            .ok()
            .and_then(|mut l| l.take())
            .unwrap_or_default()
    }

    /// The size in bytes of the largest buffer created on this context so far (the
    /// 100,000-cell test checks it against WebGPU's default binding limit).
    pub fn largest_buffer(&self) -> u64 {
        self.largest_buffer.load(Ordering::Relaxed)
    }

    /// Creates a buffer, refusing sizes over the binding limit for storage buffers and
    /// recording the largest size (no error scope: callers open one around a group).
    pub(crate) fn create_buffer(&self, desc: &wgpu::BufferDescriptor<'_>) -> Result<wgpu::Buffer> {
        let max = self.device.limits().max_storage_buffer_binding_size;
        if desc.usage.contains(wgpu::BufferUsages::STORAGE) && desc.size > max {
            return Err(Error::Gpu(format!(
                "buffer {} needs {} bytes, over this adapter's limit of {max} bytes per \
                 storage binding",
                desc.label.unwrap_or("?"),
                desc.size
            )));
        }
        self.largest_buffer.fetch_max(desc.size, Ordering::Relaxed);
        Ok(self.device.create_buffer(desc))
    }

    /// Fault injection, for tests of what callers do when the GPU runs out of memory:
    /// the next out-of-memory error scope that closes around a buffer allocation reports
    /// an error (once), as a device out of memory does. wgpu cannot be made to run out
    /// of memory on demand, so the scope's verdict is what is injected; the allocation,
    /// the scope and every caller's handling of its error are the real ones.
    pub fn fail_next_allocation(&self) {
        self.fail_allocation.store(true, Ordering::Relaxed);
    }

    /// The verdict of an out-of-memory scope around an allocation: the device's error,
    /// or the injected one (see [`GpuContext::fail_next_allocation`]).
    pub(crate) fn out_of_memory(&self, popped: Option<wgpu::Error>) -> Option<String> {
        let injected = self.fail_allocation.swap(false, Ordering::Relaxed);
        match popped {
            Some(e) => Some(e.to_string()),
            None if injected => {
                Some("Out of memory (injected by a test: GpuContext::fail_next_allocation)".into())
            }
            None => None,
        }
    }

    /// Fault injection, for tests of what callers do when a shader fails validation:
    /// compiles a WGSL kernel with a type error through [`GpuContext::compute_pipeline`]
    /// (the real error scope), so the device reports a real validation error, returned
    /// as [`Error::Gpu`] naming the shader.
    pub async fn compile_invalid_shader(&self) -> Result<()> {
        const INVALID: &str = "@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n\
             @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) i: vec3<u32>) {\n\
             let v: f32 = i.x;\n  x[i.x] = v;\n}\n";
        self.compute_pipeline("invalid (injected by a test)", INVALID)
            .await
            .map(|_| ())
    }

    /// An error if the device has been lost (then the caller falls back to the CPU).
    pub fn check_lost(&self) -> Result<()> {
        match self.lost.lock().ok().and_then(|l| l.clone()) {
            Some(why) => Err(Error::Gpu(format!("the GPU device was lost ({why})"))),
            None => Ok(()),
        }
    }

    /// Compiles a WGSL compute shader into a pipeline (entry point `main`, layout
    /// derived from the shader), turning validation errors into [`Error::Gpu`] that
    /// names the shader.
    pub async fn compute_pipeline(
        &self,
        name: &str,
        source: &str,
    ) -> Result<wgpu::ComputePipeline> {
        self.compute_pipeline_entry(name, source, "main").await
    }

    /// As [`GpuContext::compute_pipeline`], for the entry point `entry` (shaders with
    /// several kernels, e.g. `linear_backward`'s `dx`, `dw`, `dbias`).
    pub async fn compute_pipeline_entry(
        &self,
        name: &str,
        source: &str,
        entry: &str,
    ) -> Result<wgpu::ComputePipeline> {
        self.check_lost()?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = scope.pop().await {
            // wgpu's report spans lines (a source excerpt); the user gets one line.
            let e = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            return Err(Error::Gpu(format!(
                "shader {name} (entry {entry}) failed to compile: {e}"
            )));
        }
        Ok(pipeline)
    }

    /// Creates a storage buffer initialised with `data`, inside an out-of-memory scope.
    pub async fn storage_buffer(
        &self,
        label: &str,
        data: &[u8],
        readable: bool,
    ) -> Result<wgpu::Buffer> {
        self.check_lost()?;
        let size = (data.len().max(4) as u64).div_ceil(4) * 4;
        let mut usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        if readable {
            usage |= wgpu::BufferUsages::COPY_SRC;
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        });
        let buffer = match buffer {
            Ok(b) => b,
            Err(e) => {
                let _ = scope.pop().await;
                return Err(e);
            }
        };
        if !data.is_empty() {
            self.queue.write_buffer(&buffer, 0, data);
        }
        if let Some(e) = self.out_of_memory(scope.pop().await) {
            return Err(Error::Gpu(format!(
                "out of GPU memory creating {label}: {e}"
            )));
        }
        Ok(buffer)
    }

    /// Copies `size` bytes of `buffer` back to the CPU, without blocking the browser's
    /// event loop (natively the device is polled until the copy is done).
    pub async fn read_buffer(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        self.check_lost()?;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        self.map_read(&staging, size).await
    }

    /// Maps a `MAP_READ` staging buffer whose copy has been submitted, copies `size`
    /// bytes out and unmaps it (natively by polling; in the browser by awaiting).
    pub async fn map_read(&self, staging: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let (sender, receiver) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, ..size, move |r| {
            let _ = sender.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        match receiver.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // A device that was just lost (the browser reports it asynchronously)
                // shows up first as a failed mapping: say so.
                self.check_lost()?;
                return Err(Error::Gpu(format!(
                    "reading results back from the GPU failed ({e}); the GPU device was \
                     probably lost or reset"
                )));
            }
            Err(_) => return Err(Error::Gpu("reading a buffer back was cancelled".into())),
        }
        self.check_lost()?;
        let view = staging
            .get_mapped_range(..size)
            .map_err(|e| Error::Gpu(format!("mapping a buffer failed: {e}")))?;
        let bytes = view.to_vec();
        drop(view);
        staging.unmap();
        Ok(bytes)
    }
}

fn log_error(message: &str) {
    #[cfg(target_arch = "wasm32")]
    web_sys::console::error_1(&message.into());
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{message}");
}
