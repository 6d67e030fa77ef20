#!/usr/bin/env escript
%% Item 3: ignore from init under start_link: a trapping caller gets {'EXIT', Pid, normal}.
-module(init_ignore).
-mode(compile).
-behaviour(gen_server).
-export([main/1, init/1, handle_call/3, handle_cast/2]).

main(_) ->
    process_flag(trap_exit, true),
    io:format("start_link: ~p~n", [gen_server:start_link(?MODULE, [], [])]),
    receive {'EXIT', _, R} -> io:format("trapped exit: ~p~n", [R]) after 100 -> io:format("no EXIT~n") end.

init(_) -> ignore.
handle_call(_, _, S) -> {reply, ok, S}.
handle_cast(_, S) -> {noreply, S}.
