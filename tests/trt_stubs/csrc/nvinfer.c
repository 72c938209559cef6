/* Stand-in for libnvinfer.so.N: just enough for tensorrt_bindings/tensorrt.so to load.
 * Every factory returns NULL, so trt.Builder(logger) / trt.Runtime(logger) fail cleanly
 * ("factory function returned nullptr"), exactly as on a machine without a usable GPU. */
#include <stddef.h>

void *createInferBuilder_INTERNAL(void *logger, int version) { (void)logger; (void)version; return NULL; }
void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { (void)engine; (void)logger; (void)version; return NULL; }
void *createInferRuntime_INTERNAL(void *logger, int version) { (void)logger; (void)version; return NULL; }
void *getBuilderPluginRegistry(int capability) { (void)capability; return NULL; }
