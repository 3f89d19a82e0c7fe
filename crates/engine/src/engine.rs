//! Start-up (one thread per device, models loaded and warmed up there), opening streams, and
//! shutdown.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::backend::DeviceOps;
use costream_continual::TemporalFill;

use crate::clock::{Clock, SystemClock};
use crate::config::{EngineConfig, ModelConfig};
use crate::device::DeviceSpec;
use crate::error::{EngineError, OpenError};
use crate::fault::Faults;
use crate::model::{LoadedModel, ModelInfo};
use crate::stream::{OpenOptions, StreamHandle};
use crate::worker::{Command, OpenIds, Opened, Worker};

/// The running engine: a device thread per device, each owning its models and streams.
/// Dropping it ends every stream and stops the threads.
#[derive(Debug)]
pub struct Engine {
    models: Vec<ServedModel>,
    devices: Vec<DeviceThread>,
    /// Armed by [`Engine::inject_fault`].
    #[cfg(feature = "fault-injection")]
    faults: Arc<Faults>,
}

/// Where the device thread's answer to an open arrives.
type OpenAnswer = flume::Receiver<Result<Opened, OpenError>>;

/// A model and where its commands go.
#[derive(Debug)]
struct ServedModel {
    info: Arc<ModelInfo>,
    device: usize,
    index: usize,
}

/// A device thread and its command queue.
#[derive(Debug)]
struct DeviceThread {
    commands: flume::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Loads every model on its device, warms it up, and starts serving.
    ///
    /// # Errors
    /// [`EngineError`] for an invalid config, a device that is not built in or does not
    /// exist, weights that cannot be loaded, or a model that fails its warm-up.
    pub fn start(config: &EngineConfig) -> Result<Engine, EngineError> {
        Engine::start_with_clock(config, Arc::new(SystemClock::new()))
    }

    /// [`Engine::start`] with the clock that times idle streams (a
    /// [`crate::ManualClock`] in tests).
    ///
    /// # Errors
    /// As [`Engine::start`].
    pub fn start_with_clock(
        config: &EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, EngineError> {
        config.validate()?;
        let mut by_device: Vec<(DeviceSpec, Vec<ModelConfig>)> = vec![];
        for model in &config.models {
            match by_device.iter_mut().find(|(d, _)| *d == model.device) {
                Some((_, models)) => models.push(model.clone()),
                None => by_device.push((model.device, vec![model.clone()])),
            }
        }
        let ids: OpenIds = Arc::new(Mutex::new(HashSet::new()));
        let faults = Arc::new(Faults::default());
        let mut engine = Engine {
            models: vec![],
            devices: vec![],
            #[cfg(feature = "fault-injection")]
            faults: faults.clone(),
        };
        let mut starting = vec![];
        for (spec, models) in by_device {
            let places: usize = models
                .iter()
                .map(|m| (m.slots.capacity + m.slots.backlog) * (m.slots.max_pending_frames + 4))
                .sum();
            let (commands, receiver) = flume::bounded(places + 64);
            let (ready, answer) = flume::bounded(1);
            let job = DeviceJob {
                spec,
                models,
                clock: clock.clone(),
                ids: ids.clone(),
                faults: faults.clone(),
                commands: receiver,
                ready,
            };
            let thread = job.start()?;
            engine.devices.push(DeviceThread {
                commands,
                thread: Some(thread),
            });
            starting.push(answer);
        }
        // Devices load and warm up in parallel; the engine is ready when all are.
        for (device, answer) in starting.into_iter().enumerate() {
            let infos = answer.recv().map_err(|_| EngineError::Stopped)??;
            for (index, info) in infos.into_iter().enumerate() {
                engine.models.push(ServedModel {
                    info: Arc::new(info),
                    device,
                    index,
                });
            }
        }
        // Keep the configured order for listings.
        let order: HashMap<&str, usize> = config
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.as_str(), i))
            .collect();
        engine
            .models
            .sort_by_key(|m| order.get(m.info.name.as_str()).copied());
        Ok(engine)
    }

    /// Makes the device threads fail at `point` the next `times` times they get there (tests
    /// of how failures are contained).
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&self, point: crate::FaultPoint, times: usize) {
        self.faults.arm(point, times);
    }

    /// The served models, in configuration order.
    pub fn models(&self) -> impl Iterator<Item = &ModelInfo> {
        self.models.iter().map(|m| m.info.as_ref())
    }

    /// A served model by name.
    pub fn model(&self, name: &str) -> Option<&ModelInfo> {
        self.find(name).map(|m| m.info.as_ref())
    }

    fn find(&self, name: &str) -> Option<&ServedModel> {
        self.models.iter().find(|m| m.info.name == name)
    }

    /// Opens a stream of `model`. Its first event is [`crate::StreamEvent::Active`], or
    /// [`crate::StreamEvent::Waiting`] when every slot is taken.
    ///
    /// # Errors
    /// [`OpenError`]: unknown model, full, duplicate or invalid id, unusable snapshot.
    pub fn open(&self, model: &str, options: OpenOptions) -> Result<StreamHandle, OpenError> {
        let (served, answer) = self.request_open(model, options)?;
        let opened = answer
            .recv()
            .map_err(|_| OpenError::Snapshot(EngineError::Stopped))??;
        Ok(self.handle(served, opened))
    }

    /// [`Engine::open`] for async callers.
    ///
    /// # Errors
    /// As [`Engine::open`].
    pub async fn open_async(
        &self,
        model: &str,
        options: OpenOptions,
    ) -> Result<StreamHandle, OpenError> {
        let (served, answer) = self.request_open(model, options)?;
        let opened = answer
            .recv_async()
            .await
            .map_err(|_| OpenError::Snapshot(EngineError::Stopped))??;
        Ok(self.handle(served, opened))
    }

    fn request_open(
        &self,
        model: &str,
        options: OpenOptions,
    ) -> Result<(&ServedModel, OpenAnswer), OpenError> {
        let served = self.find(model).ok_or_else(|| OpenError::UnknownModel {
            model: model.to_string(),
            served: self.models.iter().map(|m| m.info.name.clone()).collect(),
        })?;
        let (reply, answer) = flume::bounded(1);
        self.devices[served.device]
            .commands
            .send(Command::Open {
                model: served.index,
                options,
                reply,
            })
            .map_err(|_| OpenError::Snapshot(EngineError::Stopped))?;
        Ok((served, answer))
    }

    fn handle(&self, served: &ServedModel, opened: Opened) -> StreamHandle {
        StreamHandle {
            id: opened.id,
            key: opened.key,
            model_index: served.index,
            info: served.info.clone(),
            commands: self.devices[served.device].commands.clone(),
            events: opened.events,
            pending: opened.pending,
            counters: opened.counters,
            ended: AtomicBool::new(false),
        }
    }

    /// Ends the streams that have been idle longer than their model's timeout now, instead
    /// of at the device threads' next poll; returns their ids.
    pub fn reap_idle(&self) -> Vec<String> {
        let answers: Vec<_> = self
            .devices
            .iter()
            .filter_map(|d| {
                let (reply, answer) = flume::bounded(1);
                d.commands.send(Command::Maintain { reply }).ok()?;
                Some(answer)
            })
            .collect();
        answers
            .into_iter()
            .filter_map(|a| a.recv().ok())
            .flatten()
            .collect()
    }

    /// Ends every stream (each gets its summary) and stops the device threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for device in &self.devices {
            let _ = device.commands.send(Command::Shutdown);
        }
        for device in &mut self.devices {
            if let Some(thread) = device.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Everything a device thread starts with.
struct DeviceJob {
    spec: DeviceSpec,
    models: Vec<ModelConfig>,
    clock: Arc<dyn Clock>,
    ids: OpenIds,
    faults: Arc<Faults>,
    commands: flume::Receiver<Command>,
    ready: flume::Sender<Result<Vec<ModelInfo>, EngineError>>,
}

impl DeviceJob {
    /// Starts the device's thread, on the backend that serves it.
    fn start(self) -> Result<JoinHandle<()>, EngineError> {
        #[allow(unreachable_patterns)]
        match self.spec {
            DeviceSpec::Cpu => self.spawn::<costream_backend::Cpu>(Default::default()),
            #[cfg(feature = "wgpu")]
            DeviceSpec::Wgpu(index) => self.spawn::<costream_backend::Wgpu>(match index {
                None => costream_backend::WgpuDevice::DefaultDevice,
                Some(n) => costream_backend::WgpuDevice::DiscreteGpu(n),
            }),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(index) => {
                self.spawn::<costream_backend::Cuda>(costream_backend::CudaDevice { index })
            }
            spec => {
                let feature = match spec {
                    DeviceSpec::Wgpu(_) => "wgpu",
                    _ => "cuda",
                };
                Err(EngineError::Device {
                    device: spec.to_string(),
                    model: self.model_names(),
                    message: format!(
                        "this build has no {feature} backend; rebuild with `--features {feature}`"
                    ),
                })
            }
        }
    }

    /// The names of the models, for messages.
    fn model_names(&self) -> String {
        self.models
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn spawn<B: Backend>(self, device: B::Device) -> Result<JoinHandle<()>, EngineError> {
        let spec = self.spec;
        std::thread::Builder::new()
            .name(format!("costream-{spec}"))
            .spawn(move || self.run::<B>(device))
            .map_err(|e| EngineError::Device {
                device: spec.to_string(),
                model: String::new(),
                message: format!("cannot start its thread: {e}"),
            })
    }

    fn run<B: Backend>(self, device: B::Device) {
        let device_error = |message: String| EngineError::Device {
            device: self.spec.to_string(),
            model: self.model_names(),
            message,
        };
        if let Some(missing) = missing_device::<B>(self.spec, &device) {
            let _ = self.ready.send(Err(device_error(missing)));
            return;
        }
        // Backends panic when the device cannot be used (no adapter, no driver): report it
        // as a start-up error naming the device.
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            load_and_warm::<B>(&self.models, &device)
        }))
        .unwrap_or_else(|panic| Err(device_error(panic_message(&panic))));
        let DeviceJob {
            clock,
            ids,
            faults,
            commands,
            ready,
            ..
        } = self;
        match loaded {
            Ok(models) => {
                let infos = models.iter().map(|m| m.info.clone()).collect();
                if ready.send(Ok(infos)).is_ok() {
                    Worker::new(device, models, clock, ids, faults).run(commands);
                }
            }
            Err(e) => {
                let _ = ready.send(Err(e));
            }
        }
    }
}

/// Why an indexed GPU device does not exist on this host (`None` if it does, or if the
/// backend cannot count its devices).
fn missing_device<B: Backend>(spec: DeviceSpec, device: &B::Device) -> Option<String> {
    let DeviceSpec::Cuda(index) = spec else {
        return None;
    };
    let type_id = device.id().type_id;
    match catch_unwind(|| B::device_count(type_id)) {
        Ok(0) => Some("no such device: this host has no CUDA device".into()),
        Ok(count) if index >= count => Some(format!(
            "no such device: this host has {count} CUDA device(s), cuda:0 to cuda:{}",
            count - 1
        )),
        Ok(_) => None,
        Err(panic) => Some(format!("cannot use CUDA: {}", panic_message(&panic))),
    }
}

/// Loads every model and steps each warm-up batch size through a whole fill, so that lazy
/// initialisation and kernel selection happen before serving.
fn load_and_warm<B: Backend>(
    configs: &[ModelConfig],
    device: &B::Device,
) -> Result<Vec<LoadedModel<B>>, EngineError> {
    configs
        .iter()
        .map(|config| {
            let start = Instant::now();
            let mut model = LoadedModel::<B>::load(config, device)?;
            let loaded = start.elapsed();
            let sizes = config
                .warmup
                .batch_sizes(config.batch.max_batch, config.device);
            for &rows in &sizes {
                let bytes = warm_up(&model, rows, device);
                if rows == 1 {
                    model.info.state_bytes_per_stream = bytes;
                }
            }
            tracing::info!(
                model = %config.name,
                device = %config.device,
                load_ms = loaded.as_millis() as u64,
                warmup_ms = (start.elapsed() - loaded).as_millis() as u64,
                batches = ?sizes,
                "model ready"
            );
            Ok(model)
        })
        .collect()
}

/// Steps `rows` zero streams until every module has emitted twice; returns the state bytes
/// per stream.
fn warm_up<B: Backend>(model: &LoadedModel<B>, rows: usize, device: &B::Device) -> usize {
    let [c, h, w] = model.info.input.frame_shape();
    let mut state = model.init_state(rows, TemporalFill::Zeros, device);
    for _ in 0..model.info.timing.delay + 2 {
        model.step(Tensor::zeros([rows, c, h, w], device), &mut state);
    }
    state.size_bytes() / rows
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the backend panicked".into())
}
