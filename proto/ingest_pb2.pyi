from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KIND_UNSPECIFIED: _ClassVar[Kind]
    KIND_CPU: _ClassVar[Kind]
    KIND_WALL: _ClassVar[Kind]
KIND_UNSPECIFIED: Kind
KIND_CPU: Kind
KIND_WALL: Kind

class Batch(_message.Message):
    __slots__ = ("batch_id", "agent", "strings", "frames", "stacks", "processes", "samples", "gpu_devices", "gpu_processes", "attempt")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    STACKS_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    GPU_DEVICES_FIELD_NUMBER: _ClassVar[int]
    GPU_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    agent: Agent
    strings: _containers.RepeatedScalarFieldContainer[str]
    frames: Frames
    stacks: Stacks
    processes: _containers.RepeatedCompositeFieldContainer[Process]
    samples: Samples
    gpu_devices: GpuDevices
    gpu_processes: GpuProcesses
    attempt: int
    def __init__(self, batch_id: _Optional[str] = ..., agent: _Optional[_Union[Agent, _Mapping]] = ..., strings: _Optional[_Iterable[str]] = ..., frames: _Optional[_Union[Frames, _Mapping]] = ..., stacks: _Optional[_Union[Stacks, _Mapping]] = ..., processes: _Optional[_Iterable[_Union[Process, _Mapping]]] = ..., samples: _Optional[_Union[Samples, _Mapping]] = ..., gpu_devices: _Optional[_Union[GpuDevices, _Mapping]] = ..., gpu_processes: _Optional[_Union[GpuProcesses, _Mapping]] = ..., attempt: _Optional[int] = ...) -> None: ...

class Agent(_message.Message):
    __slots__ = ("agent_id", "host", "version")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    host: str
    version: str
    def __init__(self, agent_id: _Optional[str] = ..., host: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class Frames(_message.Message):
    __slots__ = ("id", "function", "file", "line")
    ID_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    id: _containers.RepeatedScalarFieldContainer[int]
    function: _containers.RepeatedScalarFieldContainer[int]
    file: _containers.RepeatedScalarFieldContainer[int]
    line: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, id: _Optional[_Iterable[int]] = ..., function: _Optional[_Iterable[int]] = ..., file: _Optional[_Iterable[int]] = ..., line: _Optional[_Iterable[int]] = ...) -> None: ...

class Stacks(_message.Message):
    __slots__ = ("id", "length", "frame_index")
    ID_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    id: _containers.RepeatedScalarFieldContainer[int]
    length: _containers.RepeatedScalarFieldContainer[int]
    frame_index: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, id: _Optional[_Iterable[int]] = ..., length: _Optional[_Iterable[int]] = ..., frame_index: _Optional[_Iterable[int]] = ...) -> None: ...

class Label(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: int
    value: int
    def __init__(self, name: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...

class Process(_message.Message):
    __slots__ = ("pid", "ppid", "start_time_ms", "cmdline", "labels")
    PID_FIELD_NUMBER: _ClassVar[int]
    PPID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CMDLINE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    pid: int
    ppid: int
    start_time_ms: int
    cmdline: int
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    def __init__(self, pid: _Optional[int] = ..., ppid: _Optional[int] = ..., start_time_ms: _Optional[int] = ..., cmdline: _Optional[int] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ...) -> None: ...

class Samples(_message.Message):
    __slots__ = ("time", "pid", "tid", "thread_name", "stack_index", "kind", "count")
    TIME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TID_FIELD_NUMBER: _ClassVar[int]
    THREAD_NAME_FIELD_NUMBER: _ClassVar[int]
    STACK_INDEX_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    time: _containers.RepeatedScalarFieldContainer[int]
    pid: _containers.RepeatedScalarFieldContainer[int]
    tid: _containers.RepeatedScalarFieldContainer[int]
    thread_name: _containers.RepeatedScalarFieldContainer[int]
    stack_index: _containers.RepeatedScalarFieldContainer[int]
    kind: _containers.RepeatedScalarFieldContainer[Kind]
    count: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, time: _Optional[_Iterable[int]] = ..., pid: _Optional[_Iterable[int]] = ..., tid: _Optional[_Iterable[int]] = ..., thread_name: _Optional[_Iterable[int]] = ..., stack_index: _Optional[_Iterable[int]] = ..., kind: _Optional[_Iterable[_Union[Kind, str]]] = ..., count: _Optional[_Iterable[int]] = ...) -> None: ...

class GpuDevices(_message.Message):
    __slots__ = ("time", "index", "uuid", "name", "sm_util", "mem_util", "mem_used_bytes", "mem_total_bytes", "power_watts", "temperature_c", "sm_clock_mhz")
    TIME_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SM_UTIL_FIELD_NUMBER: _ClassVar[int]
    MEM_UTIL_FIELD_NUMBER: _ClassVar[int]
    MEM_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEM_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    POWER_WATTS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_C_FIELD_NUMBER: _ClassVar[int]
    SM_CLOCK_MHZ_FIELD_NUMBER: _ClassVar[int]
    time: _containers.RepeatedScalarFieldContainer[int]
    index: _containers.RepeatedScalarFieldContainer[int]
    uuid: _containers.RepeatedScalarFieldContainer[int]
    name: _containers.RepeatedScalarFieldContainer[int]
    sm_util: _containers.RepeatedScalarFieldContainer[float]
    mem_util: _containers.RepeatedScalarFieldContainer[float]
    mem_used_bytes: _containers.RepeatedScalarFieldContainer[int]
    mem_total_bytes: _containers.RepeatedScalarFieldContainer[int]
    power_watts: _containers.RepeatedScalarFieldContainer[float]
    temperature_c: _containers.RepeatedScalarFieldContainer[float]
    sm_clock_mhz: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, time: _Optional[_Iterable[int]] = ..., index: _Optional[_Iterable[int]] = ..., uuid: _Optional[_Iterable[int]] = ..., name: _Optional[_Iterable[int]] = ..., sm_util: _Optional[_Iterable[float]] = ..., mem_util: _Optional[_Iterable[float]] = ..., mem_used_bytes: _Optional[_Iterable[int]] = ..., mem_total_bytes: _Optional[_Iterable[int]] = ..., power_watts: _Optional[_Iterable[float]] = ..., temperature_c: _Optional[_Iterable[float]] = ..., sm_clock_mhz: _Optional[_Iterable[float]] = ...) -> None: ...

class GpuProcesses(_message.Message):
    __slots__ = ("time", "pid", "index", "uuid", "sm_util", "mem_used_bytes")
    TIME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    SM_UTIL_FIELD_NUMBER: _ClassVar[int]
    MEM_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    time: _containers.RepeatedScalarFieldContainer[int]
    pid: _containers.RepeatedScalarFieldContainer[int]
    index: _containers.RepeatedScalarFieldContainer[int]
    uuid: _containers.RepeatedScalarFieldContainer[int]
    sm_util: _containers.RepeatedScalarFieldContainer[float]
    mem_used_bytes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, time: _Optional[_Iterable[int]] = ..., pid: _Optional[_Iterable[int]] = ..., index: _Optional[_Iterable[int]] = ..., uuid: _Optional[_Iterable[int]] = ..., sm_util: _Optional[_Iterable[float]] = ..., mem_used_bytes: _Optional[_Iterable[int]] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("batch_id", "rows", "samples", "duplicate")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    rows: int
    samples: int
    duplicate: bool
    def __init__(self, batch_id: _Optional[str] = ..., rows: _Optional[int] = ..., samples: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...
