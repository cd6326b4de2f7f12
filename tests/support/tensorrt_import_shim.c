/* Import-only stand-ins for the nine entry points that NVIDIA's TensorRT Python bindings
 * (tensorrt_cu12_bindings 10.x, tensorrt_cu13_bindings 11.x) link from libnvinfer,
 * libnvonnxparser and libnvinfer_plugin. With them the real bindings import on a machine
 * without those libraries (they are not on PyPI, only behind pypi.nvidia.com), so the tests
 * can read the bindings' real classes, enums and members. Nothing here builds or runs anything:
 * every factory returns NULL, so a Builder or Runtime made through them raises at once.
 * Built by tests/support/install_tensorrt_bindings.sh. */
#include <stddef.h>

void *createInferBuilder_INTERNAL(void *logger, int version) { return NULL; }
void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { return NULL; }
void *createInferRuntime_INTERNAL(void *logger, int version) { return NULL; }
void *createNvOnnxParser_INTERNAL(void *network, void *logger, int version) { return NULL; }
void *createNvOnnxParserRefitter_INTERNAL(void *refitter, void *logger, int version) { return NULL; }
void *getBuilderPluginRegistry(int capability) { return NULL; }
void *getPluginRegistry(void) { return NULL; }
int getNvOnnxParserVersion(void) { return 0; }
int initLibNvInferPlugins(void *logger, const char *ns) { return 0; }
