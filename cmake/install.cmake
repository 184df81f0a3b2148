# `cmake --install BUILD --prefix PREFIX` for C and C++ consumers:
#   PREFIX/include/pagedkv.h
#   PREFIX/lib/libpagedkv.so -> libpagedkv.so.<soversion> -> libpagedkv.so.<version>
#   PREFIX/lib/pkgconfig/pagedkv.pc              (pkg-config --cflags --libs pagedkv)
#   PREFIX/lib/cmake/pagedkv/pagedkvConfig.cmake (find_package(pagedkv) -> pagedkv::pagedkv)
# The shared library is the one installed: it carries its dependencies (OpenMP, libzmq, the CUDA
# runtime) itself, so consumers link only -lpagedkv. (lib/ is lib/<multiarch> under /usr on Debian.)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(pagedkv_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/pagedkv)

install(FILES ${PROJECT_SOURCE_DIR}/include/pagedkv.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS pagedkv EXPORT pagedkvTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT pagedkvTargets NAMESPACE pagedkv:: DESTINATION ${pagedkv_cmake_dir})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/pagedkvConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/pagedkvConfig.cmake INSTALL_DESTINATION ${pagedkv_cmake_dir})
# Before 1.0 a minor release may change the ABI (as the soname says): only the same MAJOR.MINOR is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/pagedkvConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/pagedkvConfig.cmake ${PROJECT_BINARY_DIR}/pagedkvConfigVersion.cmake
        DESTINATION ${pagedkv_cmake_dir})

# pagedkv.pc names the prefix given at install time (cmake --install --prefix), not at configure time.
install(CODE "
  set(PAGEDKV_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(PAGEDKV_PC_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(PAGEDKV_PC_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(PAGEDKV_PC_VERSION \"${PROJECT_VERSION}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/cmake/pagedkv.pc.in\" \"${PROJECT_BINARY_DIR}/pagedkv.pc\" @ONLY)
")
install(FILES ${PROJECT_BINARY_DIR}/pagedkv.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
