/* Stand-in for libnvparsers.so.8 (TensorRT 8.6 only): the UFF and Caffe parser entry points the
 * 8.6 bindings link to, under their C++ mangled names. None of them is called by rtdeploy. */
#include <stddef.h>

void *_ZN11nvuffparser15createUffParserEv(void) { return NULL; }
void _ZN11nvuffparser8FieldMapC1EPKcPKvNS_9FieldTypeEi(void *self, const char *name, const void *data, int type, int length)
{ (void)self; (void)name; (void)data; (void)type; (void)length; }
void *_ZN14nvcaffeparser117createCaffeParserEv(void) { return NULL; }
void _ZN14nvcaffeparser123shutdownProtobufLibraryEv(void) { }
